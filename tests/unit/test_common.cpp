// The shared building blocks: the CSV writer, the config-file reader, atomic replacement.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/csv.hpp"
#include "brainmri/common/ini.hpp"
#include "brainmri/common/log.hpp"
#include "brainmri/common/progress.hpp"
#include "test_support.hpp"

namespace {

using brainmri::CsvTable;
namespace fs = std::filesystem;

TEST(CsvTable, QuotesFieldsThatWouldBreakARowAsRfc4180Says) {
  CsvTable table({"class", "note", "value"});
  table.row({"meningioma, large", "said \"no\"", CsvTable::number(0.1)});
  table.row({"line\nbreak", "", CsvTable::number(std::nan(""))});
  EXPECT_EQ(table.text(), "class,note,value\n\"meningioma, large\",\"said \"\"no\"\"\",0.1\n\"line\nbreak\",,\n");
  EXPECT_THROW(table.row({"too", "few"}), std::invalid_argument);
  // Full precision: the text reads back as the same double.
  EXPECT_EQ(std::stod(CsvTable::number(0.1 + 0.2)), 0.1 + 0.2);
}

TEST(IniReader, ReadsKeyValueLinesAndNamesTheBadLine) {
  std::istringstream good(
      "# comment\n; another\n\n  lr = 0.001 \nstage = head: lr=1e-3 epochs=2\nstage = top: epochs=1\nempty =\n");
  const auto entries = brainmri::parse_ini(good, "good.ini");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].key, "lr");
  EXPECT_EQ(entries[0].value, "0.001");
  EXPECT_EQ(entries[0].line, 4);
  EXPECT_EQ(entries[1].value, "head: lr=1e-3 epochs=2");  // '=' inside a value is kept
  EXPECT_EQ(entries[2].key, "stage");
  EXPECT_EQ(entries[3].value, "");
  std::istringstream bad("lr = 1\nnot a pair\n");
  try {
    brainmri::parse_ini(bad, "bad.ini");
    FAIL() << "accepted a line without '='";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("bad.ini:2:"), std::string::npos) << e.what();
  }
  std::istringstream section("[train]\nlr = 1\n");
  EXPECT_THROW(brainmri::parse_ini(section, "s.ini"), std::invalid_argument);
  EXPECT_THROW(brainmri::read_ini("/nonexistent/config.ini"), std::runtime_error);
}

TEST(AtomicFile, ReplacesWholeOrNotAtAll) {
  brainmri::testing::ScratchDir dir;
  const auto target = dir / "out.bin";
  brainmri::write_file_atomically(target, "old");
  // A writer that fails leaves the old file and no temporary behind.
  EXPECT_THROW(brainmri::replace_file_atomically(target,
                                                 [](const fs::path& temporary) {
                                                   std::ofstream(temporary) << "half";
                                                   throw std::runtime_error("disk full");
                                                 }),
               std::runtime_error);
  std::ifstream in(target);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "old");
  // A writer that writes nothing is an error too.
  EXPECT_THROW(brainmri::replace_file_atomically(target, [](const fs::path&) {}), std::runtime_error);
  brainmri::replace_file_atomically(target, [](const fs::path& temporary) { std::ofstream(temporary) << "new"; });
  std::ifstream again(target);
  std::getline(again, content);
  EXPECT_EQ(content, "new");
  int files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);
}

}  // namespace

TEST(ProgressMeter, LinesComeAtTheirIntervalWithCountRateAndTimeLeft) {
  EXPECT_EQ(brainmri::format_duration(7.4), "0:07");
  EXPECT_EQ(brainmri::format_duration(245), "4:05");
  EXPECT_EQ(brainmri::format_duration(3723), "1:02:03");
  std::vector<std::pair<std::string, bool>> shown;
  const auto sink = [&](const std::string& text, bool in_place) { shown.emplace_back(text, in_place); };
  brainmri::ProgressMeter lines("[train] epoch 1/2", 12000, "img", brainmri::ProgressStyle::Lines, 0.05, sink, 2000);
  lines.advance(1000);
  EXPECT_TRUE(shown.empty()) << "a line before its interval";
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  lines.advance(1000);
  ASSERT_EQ(shown.size(), 1u);
  EXPECT_FALSE(shown[0].second);
  // Resumed at 2,000: the rate counts the images of this process only.
  EXPECT_NE(shown[0].first.find("[train] epoch 1/2 4,000/12,000 img (33%), "), std::string::npos) << shown[0].first;
  EXPECT_NE(shown[0].first.find(" img/s, "), std::string::npos) << shown[0].first;
  EXPECT_NE(shown[0].first.find(" left"), std::string::npos) << shown[0].first;
  lines.finish();
  EXPECT_EQ(shown.size(), 1u) << "lines need no clearing";

  shown.clear();
  brainmri::ProgressMeter bar("packing", 100, "images", brainmri::ProgressStyle::Bar, 30, sink);
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  bar.advance(50);
  ASSERT_EQ(shown.size(), 1u) << "a bar is redrawn ten times a second, not every 30 s";
  EXPECT_TRUE(shown[0].second);
  EXPECT_NE(shown[0].first.find("packing [############............] 50/100 images (50%)"), std::string::npos)
      << shown[0].first;
  bar.finish();
  ASSERT_EQ(shown.size(), 2u);
  EXPECT_EQ(shown[1], std::make_pair(std::string(), true)) << "the bar is cleared";

  shown.clear();
  brainmri::ProgressMeter none("quiet", 10, "x", brainmri::ProgressStyle::None, 0, sink);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  none.advance(5);
  none.finish();
  EXPECT_TRUE(shown.empty());
}

// The log's lines as a person reads them: time to the millisecond, level, rank, job label.
TEST(Log, LinesCarryTimeLevelRankAndTheJobsLabelAndHonourTheLevel) {
  namespace logging = brainmri::logging;
  using brainmri::LogLevel;
  const auto level_before = logging::level();
  logging::set_rank(1, 4);
  logging::set_level(LogLevel::Info);
  testing::internal::CaptureStderr();
  logging::debug("hidden at info");
  {
    const logging::LogContext fold("[fold 2]");
    const logging::LogContext stage("[train]");
    logging::info("epoch 1");
  }
  logging::warning("no label once the contexts end");
  logging::set_level(LogLevel::Error);
  logging::warning("hidden at error");
  logging::set_level(LogLevel::Off);
  logging::error("hidden when off");
  const std::string text = testing::internal::GetCapturedStderr();
  logging::set_rank(0, 1);
  logging::set_level(level_before);

  const std::string stamp = R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} )";
  const std::regex expected("^" + stamp + R"(info    \[rank 1/4\] \[fold 2\] \[train\] epoch 1\n)" + stamp +
                            R"(warning \[rank 1/4\] no label once the contexts end\n$)");
  EXPECT_TRUE(std::regex_match(text, expected)) << text;
  EXPECT_FALSE(logging::enabled(LogLevel::Off));
}

TEST(Log, TheDefaultLevelComesFromTheEnvironmentAndABadOneIsNamed) {
  namespace logging = brainmri::logging;
  const char* before = std::getenv("BRAINMRI_LOG_LEVEL");
  const std::string saved = before ? before : "";
  ::setenv("BRAINMRI_LOG_LEVEL", "debug", 1);
  EXPECT_EQ(logging::default_level(), brainmri::LogLevel::Debug);
  ::setenv("BRAINMRI_LOG_LEVEL", "loud", 1);
  try {
    logging::default_level();
    ADD_FAILURE() << "a bad level was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("BRAINMRI_LOG_LEVEL: log-level must be trace, debug, info, warning, error or "
                                         "off, got 'loud'"),
              std::string::npos)
        << e.what();
  }
  ::unsetenv("BRAINMRI_LOG_LEVEL");
  EXPECT_EQ(logging::default_level(), brainmri::LogLevel::Info);
  if (before) ::setenv("BRAINMRI_LOG_LEVEL", saved.c_str(), 1);
}
