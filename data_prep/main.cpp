// brainmri-prep: packs an image folder tree into sharded HDF5 with a leakage audit.

#include <atomic>
#include <boost/program_options.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/log.hpp"
#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/manifest.hpp"
#include "brainmri/version.hpp"
#include "inspect.hpp"
#include "packer.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

std::atomic<bool> g_cancel{false};
extern "C" void request_cancel(int) { g_cancel.store(true); }

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

const char* kUsage =
    "Usage:\n"
    "  brainmri-prep --out DIR [options] ROOT...   pack images into sharded HDF5\n"
    "  brainmri-prep verify DIR                     re-hash shards, check schema and manifest\n"
    "  brainmri-prep audit DIR [--json FILE]        print the leakage audit, write it as JSON\n\n"
    "ROOT is <root>/<split>/<class>/<image> (Kaggle layout) or <root>/<class>/<image> (the split is\n"
    "then the root folder's name). Class names are folder names, sorted.\n";

po::variables_map parse(int argc, const char* const argv[], const po::options_description& options,
                        const po::positional_options_description& positional) {
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(options).positional(positional).run(), vm);
  po::notify(vm);
  return vm;
}

int run_pack(int argc, const char* const argv[]) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  po::options_description options("Pack options");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("version", "print the version and exit")
    ("out,o", po::value<std::string>(), "output directory (required); written atomically")
    ("force", po::bool_switch(), "replace an existing output directory")
    ("splits", po::value<std::string>()->default_value(""), "comma-separated splits to pack, e.g. Training,Testing (default: all found)")
    ("class-map", po::value<std::string>()->default_value(""), "rename classes: folder=name,... (e.g. notumor=healthy)")
    ("size", po::value<int>()->default_value(128), "output images are SIZE x SIZE pixels")
    ("channels", po::value<int>()->default_value(1), "stored channels: 1 (grayscale) or 3 (RGB)")
    ("resize", po::value<std::string>()->default_value("stretch"), "stretch (as the paper) or pad (keep aspect, black borders)")
    ("dtype", po::value<std::string>()->default_value("uint8"), "uint8 (value/255, exact and 4x smaller) or float32 (values in [0,1])")
    ("shards", po::value<int>()->default_value(0), "number of shards (0: about --shard-size-mb of pixels each)")
    ("shard-size-mb", po::value<int>()->default_value(64), "target uncompressed size of a shard when --shards is 0")
    ("threads", po::value<int>()->default_value(static_cast<int>(cores)), "worker threads for decoding, resizing, hashing and compression")
    ("compression", po::value<int>()->default_value(4), "deflate level 0-9 (with the shuffle filter)")
    ("near-dup-bits", po::value<int>()->default_value(2), "perceptual-hash Hamming distance that makes two images near duplicates (-1: exact duplicates only); see docs/dataset-format.md")
    ("folds", po::value<int>()->default_value(0), "write a stratified group k-fold assignment with K folds (0: none)")
    ("seed", po::value<std::uint64_t>()->default_value(42), "seed of the fold assignment")
    ("holdout-split", po::value<std::string>()->default_value(""), "keep this split (e.g. Testing) out of the folds as a fixed test set")
    ("holdout-policy", po::value<std::string>()->default_value("split-test"), "training images that copy a held-out image: split-test (keep them; the test split is evaluated in a clean part, without a copy in training, and a contaminated part) or drop-train (exclude them from every fold)")
    ("strict", po::bool_switch(), "fail on any unreadable input instead of skipping it")
    ("quiet,q", po::bool_switch(), "log only errors (--log-level error)")
    ("log-level", po::value<std::string>()->default_value(brainmri::name_of(brainmri::logging::level())), "what the log (stderr, timestamped) shows: trace, debug, info, warning, error or off; the default comes from BRAINMRI_LOG_LEVEL, else info")
    ("config", po::value<std::string>(), "read options from an INI file (key = value, same names without --; 'root' may be repeated); the command line wins");
  // clang-format on
  po::options_description hidden;
  hidden.add_options()("root", po::value<std::vector<std::string>>(), "dataset roots");
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("root", -1);

  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  if (vm.count("config")) {
    const auto config_path = vm["config"].as<std::string>();
    std::ifstream config(config_path);
    if (!config) throw UsageError("cannot read --config " + config_path);
    po::store(po::parse_config_file(config, all), vm);  // values already set on the command line win
  }
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << kUsage << "\n" << options << "\n";
    return kExitOk;
  }
  if (vm.count("version")) {
    std::cout << "brainmri-prep " << brainmri::kVersion << " (dataset format " << brainmri::data::format::kFormatVersion
              << ")\n";
    return kExitOk;
  }
  if (!vm.count("out")) throw UsageError("--out is required");
  if (!vm.count("root")) throw UsageError("give at least one dataset ROOT");

  brainmri::prep::PackOptions pack;
  pack.output = vm["out"].as<std::string>();
  pack.force = vm["force"].as<bool>();
  for (const auto& root : vm["root"].as<std::vector<std::string>>()) pack.discovery.roots.emplace_back(root);
  pack.discovery.splits = split_list(vm["splits"].as<std::string>());
  try {
    pack.discovery.class_map = brainmri::prep::parse_class_map(vm["class-map"].as<std::string>());
    pack.preprocess.resize = brainmri::imaging::parse_resize_mode(vm["resize"].as<std::string>());
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  pack.preprocess.size = vm["size"].as<int>();
  pack.preprocess.channels = vm["channels"].as<int>();
  const auto dtype = vm["dtype"].as<std::string>();
  if (dtype != "uint8" && dtype != "float32") throw UsageError("--dtype must be uint8 or float32, got " + dtype);
  pack.preprocess.output =
      dtype == "float32" ? brainmri::imaging::PixelType::kFloat32 : brainmri::imaging::PixelType::kUint8;
  pack.shard_count = vm["shards"].as<int>();
  if (pack.shard_count < 0) throw UsageError("--shards must be 0 (automatic) or positive");
  const int shard_mb = vm["shard-size-mb"].as<int>();
  if (shard_mb < 1) throw UsageError("--shard-size-mb must be positive");
  pack.shard_target_bytes = static_cast<std::size_t>(shard_mb) << 20;
  pack.threads = vm["threads"].as<int>();
  if (pack.threads < 1) throw UsageError("--threads must be at least 1");
  pack.compression_level = vm["compression"].as<int>();
  pack.near_duplicate_bits = vm["near-dup-bits"].as<int>();
  pack.fold_count = vm["folds"].as<int>();
  pack.seed = vm["seed"].as<std::uint64_t>();
  pack.held_out_split = vm["holdout-split"].as<std::string>();
  if (!pack.held_out_split.empty() && pack.fold_count == 0) throw UsageError("--holdout-split needs --folds");
  try {
    pack.holdout_policy = brainmri::parse_enum<brainmri::data::HoldoutPolicy>(vm["holdout-policy"].as<std::string>());
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--holdout-policy: ") + e.what());
  }
  pack.strict = vm["strict"].as<bool>();
  pack.command_line.assign(argv, argv + argc);
  const bool quiet = vm["quiet"].as<bool>();
  try {
    brainmri::logging::set_level(quiet ? brainmri::LogLevel::Error
                                       : brainmri::parse_enum<brainmri::LogLevel>(vm["log-level"].as<std::string>()));
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (!quiet) pack.progress = [](const std::string& line) { brainmri::logging::info("brainmri-prep: " + line); };

  std::signal(SIGINT, request_cancel);
  std::signal(SIGTERM, request_cancel);
  try {
    const auto manifest = brainmri::prep::pack_dataset(pack, &g_cancel);
    if (!quiet) {
      std::int64_t redundant = 0;
      for (const auto& g : manifest.duplicate_groups) redundant += static_cast<std::int64_t>(g.members.size()) - 1;
      std::cout << "Packed " << manifest.sample_count << " images (" << manifest.class_names.size() << " classes, "
                << manifest.shards.size() << " shard(s)) into " << fs::absolute(pack.output).lexically_normal().string()
                << "\n  rejected inputs: " << manifest.rejected.size()
                << "\n  duplicate groups: " << manifest.duplicate_groups.size() << " (" << redundant
                << " redundant images)\n  run `brainmri-prep audit " << pack.output.string()
                << "` for the full leakage audit\n";
    }
  } catch (const brainmri::prep::PackError& e) {
    if (g_cancel.load()) {
      brainmri::logging::error("brainmri-prep: interrupted; no output was written to " + pack.output.string());
      return kExitInterrupted;
    }
    throw;
  }
  return kExitOk;
}

int run_verify(int argc, const char* const argv[]) {
  po::options_description options("Verify options");
  options.add_options()("help,h", "show this help and exit")("dir", po::value<std::string>(),
                                                             "packed dataset directory");
  po::positional_options_description positional;
  positional.add("dir", 1);
  const auto vm = parse(argc, argv, options, positional);
  if (vm.count("help")) {
    std::cout << "Usage: brainmri-prep verify DIR\n\nRe-hashes every shard against manifest.json and checks the "
                 "schema; exits 1 naming the first broken shard.\n\n"
              << options << "\n";
    return kExitOk;
  }
  if (!vm.count("dir")) throw UsageError("verify needs the dataset directory");
  try {
    const auto summary = brainmri::prep::verify_dataset(vm["dir"].as<std::string>());
    std::cout << "OK: " << summary.shards << " shard(s), " << summary.samples << " samples verified\n";
    return kExitOk;
  } catch (const brainmri::prep::VerifyError& e) {
    brainmri::logging::error(std::string("brainmri-prep verify: FAILED: ") + e.what());
    return kExitFailure;
  }
}

int run_audit(int argc, const char* const argv[]) {
  po::options_description options("Audit options");
  options.add_options()("help,h", "show this help and exit")(
      "json", po::value<std::string>(), "where to write the audit as JSON (default: DIR/audit.json)")(
      "dir", po::value<std::string>(), "packed dataset directory");
  po::positional_options_description positional;
  positional.add("dir", 1);
  const auto vm = parse(argc, argv, options, positional);
  if (vm.count("help")) {
    std::cout << "Usage: brainmri-prep audit DIR [--json FILE]\n\nPrints counts, duplicates within and across "
                 "splits, label conflicts, discarded colour, rejected files and fold balance.\n\n"
              << options << "\n";
    return kExitOk;
  }
  if (!vm.count("dir")) throw UsageError("audit needs the dataset directory");
  const fs::path dir = vm["dir"].as<std::string>();
  const auto audit = brainmri::prep::build_audit(dir);
  const fs::path json_path =
      vm.count("json") ? fs::path(vm["json"].as<std::string>()) : dir / brainmri::data::format::kAuditFile;
  brainmri::write_file_atomically(json_path, audit.dump(2) + "\n");
  std::cout << brainmri::prep::render_audit(audit) << "\nAudit written to " << json_path.string() << "\n";
  return kExitOk;
}

}  // namespace

int main(int argc, char* argv[]) {
  const std::string command = argc > 1 ? argv[1] : "";
  try {
    if (command == "verify") return run_verify(argc - 1, argv + 1);
    if (command == "audit") return run_audit(argc - 1, argv + 1);
    return run_pack(argc, argv);
  } catch (const po::error& e) {
    brainmri::logging::error(std::string("brainmri-prep: ") + e.what() + "\nTry 'brainmri-prep --help'.");
    return kExitUsage;
  } catch (const UsageError& e) {
    brainmri::logging::error(std::string("brainmri-prep: ") + e.what() + "\nTry 'brainmri-prep --help'.");
    return kExitUsage;
  } catch (const std::exception& e) {
    brainmri::logging::error(std::string("brainmri-prep: error: ") + e.what());
    return kExitFailure;
  }
}
