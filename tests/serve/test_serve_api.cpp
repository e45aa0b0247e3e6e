// brainmri serve through its HTTP API: the real binary, started by the test on a free loopback
// port, talked to with a real HTTP client (cpp-httplib's) and a raw socket.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "brainmri/models/checkpoint.hpp"
#include "brainmri/models/torchscript_export.hpp"
#include "test_support.hpp"

using namespace brainmri::testing;
namespace fs = std::filesystem;
using nlohmann::json;

extern char** environ;

namespace {

const std::string kBrainmri = BRAINMRI_CLI_EXE;
const fs::path kSample = BRAINMRI_SAMPLE_DIR;
const fs::path kModel = fs::path(BRAINMRI_SERVE_WORK) / "model" / "model.pt";

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Two slices of each class of the bundled sample.
std::vector<fs::path> sample_images() {
  std::vector<fs::path> images;
  for (const auto* name : {"glioma", "meningioma", "notumor", "pituitary"}) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(kSample / "Training" / name)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    images.insert(images.end(), files.begin(), files.begin() + 2);
  }
  return images;
}

std::string base64_decode(const std::string& text) {
  std::string out(3 * text.size() / 4 + 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return {};
  out.resize(static_cast<std::size_t>(n) - (text.size() >= 2 && text[text.size() - 2] == '=' ? 2
                                            : text.ends_with("=")                            ? 1
                                                                                             : 0));
  return out;
}

// Width and height from a PNG's IHDR chunk; {0, 0} if it is not a PNG.
std::pair<int, int> png_size(const std::string& png) {
  if (png.size() < 24 || png.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return {0, 0};
  auto be32 = [&](std::size_t at) {
    return (static_cast<unsigned char>(png[at]) << 24) | (static_cast<unsigned char>(png[at + 1]) << 16) |
           (static_cast<unsigned char>(png[at + 2]) << 8) | static_cast<unsigned char>(png[at + 3]);
  };
  return {be32(16), be32(20)};
}

// `brainmri serve` as a child process, its stdout and stderr in files.
class ServerProcess {
 public:
  ServerProcess(const fs::path& model, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {kBrainmri, "serve", "--model", model.string(), "--port", "0", "--threads", "8"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = spawn(args);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto out = read_file(out_file());
      if (const auto at = out.find("listening on http://127.0.0.1:");
          at != std::string::npos && out.find('\n', at) != std::string::npos) {
        port_ = std::stoi(out.substr(at + 30));
        return;
      }
      if (exited(std::chrono::milliseconds(0))) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "brainmri serve did not start:\n" << read_file(out_file()) << read_file(err_file());
  }
  ~ServerProcess() {
    if (!finished_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  fs::path out_file() const { return scratch_ / "stdout"; }
  fs::path err_file() const { return scratch_ / "stderr"; }

  // True once the process has exited (within `wait`); its status then in exit_code().
  bool exited(std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    do {
      int status = 0;
      if (!finished_ && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        finished_ = true;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (finished_) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }
  int exit_code() const { return exit_code_; }

  // A command expected to end by itself; one that serves instead is stopped after a minute.
  static CommandResult run_to_end(const std::vector<std::string>& args) {
    std::string command = "timeout 60 ";
    for (const auto& a : args) command += shell_quote(a) + " ";
    return run_command(command);
  }

 private:
  pid_t spawn(const std::vector<std::string>& args) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_file().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_file().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) ADD_FAILURE() << "cannot start " << argv[0];
    return pid;
  }

  ScratchDir scratch_;
  pid_t pid_ = -1;
  int port_ = -1;
  bool finished_ = false;
  int exit_code_ = -1;
};

httplib::Result post_image(httplib::Client& client, const std::string& bytes, const std::string& filename,
                           const std::string& field = "image") {
  const httplib::MultipartFormDataItems form = {{field, bytes, filename, "application/octet-stream"}};
  return client.Post("/api/predict", form);
}

httplib::Client client_for(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120, 0);
  client.set_write_timeout(60, 0);
  return client;
}

class ServeApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(fs::exists(kModel)) << kModel << " is missing: the serve.model test (ctest fixture) makes it";
    server_ = new ServerProcess(kModel);
  }
  static void TearDownTestSuite() { delete server_; }
  static ServerProcess* server_;
};
ServerProcess* ServeApi::server_ = nullptr;

TEST_F(ServeApi, HealthAndModelDescribeTheModelAndTheRunItCameFrom) {
  auto client = client_for(server_->port());
  const auto health = client.Get("/api/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");

  const auto response = client.Get("/api/model");
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "application/json");
  const auto model = json::parse(response->body);
  EXPECT_EQ(model["name"], "baseline_cnn");
  EXPECT_EQ(model["classes"], json({"glioma", "meningioma", "notumor", "pituitary"}));
  EXPECT_EQ(model["input"]["size"], 128);
  EXPECT_EQ(model["input"]["channels"], 1);
  EXPECT_EQ(model["input"]["resize"], "stretch");
  EXPECT_EQ(model["input"]["resize_from"], "the checkpoint's model card");
  EXPECT_EQ(model["explanation"]["available"], true);
  EXPECT_EQ(model["explanation"]["method"], "HiResCAM");
  EXPECT_EQ(model["explanation"]["layer"], "conv3");
  EXPECT_EQ(model["source"]["run_directory"], fs::absolute(kModel.parent_path()).string());
  EXPECT_EQ(model["source"]["config"]["epochs"], "4");
  EXPECT_EQ(model["source"]["config"]["lr"], "0.001");
  EXPECT_EQ(model["source"]["evaluation"]["on"], "validation");
  EXPECT_GT(model["source"]["evaluation"]["samples"].get<int>(), 0);
  EXPECT_EQ(model["limits"]["max_upload_bytes"], 10000000);
  // The version is the model file's content: the start of its SHA-256.
  const auto sha = run_command("sha256sum " + shell_quote(kModel));
  EXPECT_EQ(model["source"]["sha256"], sha.output.substr(0, 64));
  EXPECT_EQ(model["version"], sha.output.substr(0, 12));
}

TEST_F(ServeApi, PageIsSelfContainedAndCarriesTheResearchNotice) {
  auto client = client_for(server_->port());
  const auto page = client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("not a diagnostic device"), std::string::npos);
  EXPECT_NE(page->body.find("id=\"opacity\""), std::string::npos);
  // Works offline: nothing is loaded from another origin, and the browser is told so.
  EXPECT_EQ(page->body.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page->body.find("href=\"http"), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("default-src 'none'"), std::string::npos);
}

TEST_F(ServeApi, AGoodImageGetsTheSameProbabilitiesAsBrainmriPredictAndItsExplanation) {
  const auto images = sample_images();
  std::vector<std::string> arguments = {kBrainmri, "predict", "--json", "--model", kModel.string()};
  for (const auto& image : images) arguments.push_back(image.string());
  const auto predicted = ServerProcess::run_to_end(arguments);
  ASSERT_EQ(predicted.exit_code, 0) << predicted.output;
  const auto expected = json::parse(predicted.output)["results"];

  auto client = client_for(server_->port());
  for (std::size_t i = 0; i < images.size(); ++i) {
    SCOPED_TRACE(images[i].string());
    const auto response = post_image(client, read_file(images[i]), images[i].filename().string());
    ASSERT_TRUE(response);
    ASSERT_EQ(response->status, 200) << response->body;
    const auto body = json::parse(response->body);
    EXPECT_EQ(body["prediction"], expected[i]["prediction"]);
    double total = 0;
    for (const auto& [name, p] : body["probabilities"].items()) {
      EXPECT_NEAR(p.get<double>(), expected[i]["probabilities"][name].get<double>(), 1e-5) << name;
      total += p.get<double>();
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
    EXPECT_DOUBLE_EQ(body["confidence"].get<double>(),
                     body["probabilities"][body["prediction"].get<std::string>()].get<double>());
    EXPECT_EQ(body["model"]["name"], "baseline_cnn");
    EXPECT_EQ(body["image"]["filename"], images[i].filename().string());
    EXPECT_EQ(body["image"]["bytes"], fs::file_size(images[i]));
    EXPECT_NE(body["notice"].get<std::string>().find("not a medical device"), std::string::npos);
    // What the network saw and where its evidence lies, as PNGs: the input and the map at the
    // network's 128 px, the ready-made overlay enlarged to 384 px.
    EXPECT_EQ(png_size(base64_decode(body["input_png"])), std::make_pair(128, 128));
    const auto& explanation = body["explanation"];
    ASSERT_TRUE(explanation.is_object());
    EXPECT_EQ(explanation["method"], "HiResCAM");
    EXPECT_EQ(explanation["explains"], body["prediction"]);
    EXPECT_EQ(png_size(base64_decode(explanation["heatmap_png"])), std::make_pair(128, 128));
    EXPECT_EQ(png_size(base64_decode(explanation["overlay_png"])), std::make_pair(384, 384));
  }
  // Without an explanation (?explain=false) the probabilities are the same.
  const httplib::MultipartFormDataItems form = {{"image", read_file(images[0]), "a.jpg", "image/jpeg"}};
  const auto plain = client.Post("/api/predict?explain=false", form);
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->status, 200);
  const auto body = json::parse(plain->body);
  EXPECT_TRUE(body["explanation"].is_null());
  EXPECT_EQ(body["prediction"], expected[0]["prediction"]);
}

TEST_F(ServeApi, CorruptEmptyAndNonImageUploadsGetA400ThatSaysWhy) {
  auto client = client_for(server_->port());
  const auto jpeg = read_file(sample_images()[0]);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"truncated.jpg", jpeg.substr(0, jpeg.size() / 3)},
      {"notes.txt", "this is not an image\n"},
      {"damaged.png",
       std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x40\0\0\0\x40", 24) + std::string(300, '\x17')},
      {"empty.jpg", ""}};
  for (const auto& [name, bytes] : bad) {
    SCOPED_TRACE(name);
    const auto response = post_image(client, bytes, name);
    ASSERT_TRUE(response) << httplib::to_string(response.error());
    EXPECT_EQ(response->status, 400);
    const auto body = json::parse(response->body);
    EXPECT_EQ(body["status"], 400);
    EXPECT_FALSE(body["error"].get<std::string>().empty());
    if (!bytes.empty()) {
      EXPECT_NE(body["error"].get<std::string>().find("not an image"), std::string::npos) << body["error"];
    }
  }
  // A GIF (OpenCV cannot read it, and its size cannot be checked before decoding).
  const auto gif = post_image(client, std::string("GIF89a\x10\0\x10\0", 10) + std::string(64, '\0'), "anim.gif");
  ASSERT_TRUE(gif);
  EXPECT_EQ(gif->status, 400);
  EXPECT_NE(json::parse(gif->body)["error"].get<std::string>().find("not a JPEG, PNG, BMP or TIFF"), std::string::npos)
      << gif->body;
  // A few bytes whose header promises 10 gigapixels: refused before anything is decoded.
  const std::string bomb = std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\x01\x86\xa0\0\x01\x86\xa0\x08\0\0\0\0", 29);
  const auto too_many_pixels = post_image(client, bomb, "bomb.png");
  ASSERT_TRUE(too_many_pixels);
  EXPECT_EQ(too_many_pixels->status, 413);
  EXPECT_NE(json::parse(too_many_pixels->body)["error"].get<std::string>().find("100000 x 100000"), std::string::npos)
      << too_many_pixels->body;
  // A file name that is not UTF-8 comes back readable rather than failing the answer.
  const auto odd_name = post_image(client, jpeg, "scan\xff\xfe.jpg");
  ASSERT_TRUE(odd_name);
  EXPECT_EQ(odd_name->status, 200);
  const auto no_field = post_image(client, jpeg, "slice.jpg", "file");
  ASSERT_TRUE(no_field);
  EXPECT_EQ(no_field->status, 400);
  EXPECT_NE(json::parse(no_field->body)["error"].get<std::string>().find("'image'"), std::string::npos);
  // None of it hurt the server.
  const auto after = post_image(client, jpeg, "slice.jpg");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  EXPECT_FALSE(server_->exited(std::chrono::milliseconds(0)));
}

TEST_F(ServeApi, WrongMethodAndUnknownPathGetJsonErrors) {
  auto client = client_for(server_->port());
  const auto get_predict = client.Get("/api/predict");
  ASSERT_TRUE(get_predict);
  EXPECT_EQ(get_predict->status, 405);
  EXPECT_EQ(get_predict->get_header_value("Allow"), "POST");
  const auto missing = client.Get("/api/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(json::parse(missing->body)["error"].get<std::string>().find("/api/predict"), std::string::npos);
}

TEST_F(ServeApi, FiftyConcurrentRequestsAreAllAnsweredAsIfAlone) {
  const auto images = sample_images();
  auto client = client_for(server_->port());
  std::map<std::string, json> alone;
  for (const auto& image : images) {
    const auto response = post_image(client, read_file(image), image.filename().string());
    ASSERT_TRUE(response);
    ASSERT_EQ(response->status, 200);
    alone[image.string()] = json::parse(response->body)["probabilities"];
  }
  const auto before = json::parse(client.Get("/api/health")->body)["requests"];

  constexpr int kRequests = 50;
  std::vector<std::future<std::pair<int, json>>> answers;
  for (int r = 0; r < kRequests; ++r) {
    const auto image = images[static_cast<std::size_t>(r) % images.size()];
    answers.push_back(std::async(std::launch::async, [&, image] {
      auto own = client_for(server_->port());  // one connection per request, all at once
      const auto response = post_image(own, read_file(image), image.filename().string());
      if (!response) return std::make_pair(-1, json(httplib::to_string(response.error())));
      return std::make_pair(response->status, json::parse(response->body));
    }));
  }
  int largest_batch_seen = 0;
  for (int r = 0; r < kRequests; ++r) {
    const auto [status, body] = answers[static_cast<std::size_t>(r)].get();
    ASSERT_EQ(status, 200) << body.dump().substr(0, 300) << "\nserver log:\n" << read_file(server_->err_file());
    const auto& image = images[static_cast<std::size_t>(r) % images.size()];
    for (const auto& [name, p] : body["probabilities"].items()) {
      EXPECT_NEAR(p.get<double>(), alone[image.string()][name].get<double>(), 1e-5) << image << " " << name;
    }
    largest_batch_seen = std::max(largest_batch_seen, body["batch_size"].get<int>());
  }
  const auto after = json::parse(client.Get("/api/health")->body)["requests"];
  EXPECT_EQ(after["classified"].get<int>() - before["classified"].get<int>(), kRequests);
  EXPECT_EQ(after["failed"], before["failed"]);
  EXPECT_EQ(after["waiting"], 0);
  // Requests that arrive together share model calls.
  EXPECT_GT(largest_batch_seen, 1);
  EXPECT_LE(largest_batch_seen, 16);
}

TEST(ServeLimits, UploadsAboveTheLimitGet413WithOrWithoutAContentLength) {
  // The server may answer 413 and hang up while this client is still sending: that must not end
  // the test process.
  std::signal(SIGPIPE, SIG_IGN);
  ServerProcess server(kModel, {"--max-upload-mb", "1", "--quiet"});
  auto client = client_for(server.port());
  const std::string big(1'500'000, '\x42');
  const auto declared = post_image(client, big, "big.jpg");
  ASSERT_TRUE(declared) << httplib::to_string(declared.error());
  EXPECT_EQ(declared->status, 413);
  EXPECT_NE(json::parse(declared->body)["error"].get<std::string>().find("1.0 MB"), std::string::npos);
  // Far above the limit: refused on the Content-Length, before the body is kept.
  const auto huge = post_image(client, std::string(30'000'000, '\x42'), "huge.jpg");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
  // Chunked, with no length to refuse it by: refused while it is read.
  auto chunked_client = client_for(server.port());
  std::size_t sent = 0;
  const auto chunked = chunked_client.Post(
      "/api/predict",
      [&](std::size_t, httplib::DataSink& sink) {
        if (sent >= big.size()) {
          sink.done();
          return true;
        }
        const auto n = std::min<std::size_t>(64 << 10, big.size() - sent);
        sent += n;
        return sink.write(big.data() + sent - n, n);
      },
      "image/jpeg");
  if (chunked) {
    EXPECT_EQ(chunked->status, 413);
  }  // else the server hung up mid-upload, which is also a refusal
  // A real slice is still welcome.
  auto after = client_for(server.port());
  const auto ok = post_image(after, read_file(sample_images()[0]), "slice.jpg");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(ServeShutdown, SigtermFinishesTheRequestInProgressThenExitsZero) {
  ServerProcess server(kModel);
  const auto image = read_file(sample_images()[0]);
  const std::string boundary = "brainmri-test-boundary";
  const std::string body = "--" + boundary +
                           "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"s.jpg\"\r\n" +
                           "Content-Type: image/jpeg\r\n\r\n" + image + "\r\n--" + boundary + "--\r\n";
  const std::string head =
      "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
      "Content-Type: multipart/form-data; boundary=" +
      boundary + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(server.port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  const std::string first = head + body.substr(0, body.size() / 2);
  ASSERT_EQ(::send(fd, first.data(), first.size(), 0), static_cast<ssize_t>(first.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  ASSERT_EQ(::kill(server.pid(), SIGTERM), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(server.exited(std::chrono::milliseconds(0))) << "exited with a request half received";
  // No new connections once it is stopping.
  auto late = client_for(server.port());
  late.set_connection_timeout(2, 0);
  EXPECT_FALSE(late.Get("/api/health"));

  const std::string rest = body.substr(body.size() / 2);
  ASSERT_EQ(::send(fd, rest.data(), rest.size(), 0), static_cast<ssize_t>(rest.size()));
  std::string response;
  char buffer[65536];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) response.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response.substr(0, 200);
  EXPECT_NE(response.find("\"prediction\""), std::string::npos);

  ASSERT_TRUE(server.exited(std::chrono::seconds(30)));
  EXPECT_EQ(server.exit_code(), 0) << read_file(server.err_file());
  const auto log = read_file(server.err_file());
  EXPECT_NE(log.find("SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

TEST(ServeExport, ATorchScriptExportIsServedWithTheSameProbabilitiesAndNoExplanation) {
  // Next to the run's files, as cv --final leaves its export: the class names come from there.
  ScratchDir scratch;
  fs::copy(kModel.parent_path(), scratch.path(), fs::copy_options::recursive);
  const auto exported = scratch / "model.torchscript.pt";
  auto model = brainmri::models::load_model_from_checkpoint(kModel, torch::kCPU);
  brainmri::models::export_torchscript(*model, exported);
  ServerProcess from_export(exported, {"--quiet"});
  // The export returns the network's logits; the checkpoint's stored temperature is left out to compare.
  ServerProcess from_checkpoint(kModel, {"--quiet", "--calibration", "none"});
  auto a = client_for(from_export.port());
  auto b = client_for(from_checkpoint.port());
  const auto description = json::parse(a.Get("/api/model")->body);
  EXPECT_EQ(description["name"], "torchscript");
  EXPECT_EQ(description["explanation"]["available"], false);
  EXPECT_EQ(description["classes"], json({"glioma", "meningioma", "notumor", "pituitary"}));
  for (const auto& image : sample_images()) {
    const auto bytes = read_file(image);
    const auto x = post_image(a, bytes, "x.jpg");
    const auto y = post_image(b, bytes, "y.jpg");
    ASSERT_TRUE(x && y);
    ASSERT_EQ(x->status, 200) << x->body;
    const auto from_x = json::parse(x->body);
    const auto from_y = json::parse(y->body);
    EXPECT_TRUE(from_x["explanation"].is_null());
    for (const auto& [name, p] : from_y["probabilities"].items()) {
      ASSERT_TRUE(from_x["probabilities"].contains(name)) << from_x["probabilities"];
      EXPECT_NEAR(from_x["probabilities"][name].get<double>(), p.get<double>(), 1e-5) << image << " " << name;
    }
  }
}

TEST(ServeUsage, BadOptionsExitTwoAndABusyPortOrABadModelExitOne) {
  const auto help = ServerProcess::run_to_end({kBrainmri, "serve", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* option :
       {"--model", "--host", "--port", "--threads", "--max-upload-mb", "--max-batch", "--max-waiting", "--method",
        "--layer", "--resize", "(=8080)", "(=127.0.0.1)", "/api/predict"}) {
    EXPECT_NE(help.output.find(option), std::string::npos) << option;
  }
  const auto listed = ServerProcess::run_to_end({kBrainmri, "--help"});
  EXPECT_NE(listed.output.find("serve "), std::string::npos) << listed.output;
  const auto no_model = ServerProcess::run_to_end({kBrainmri, "serve"});
  EXPECT_EQ(no_model.exit_code, 2) << no_model.output;
  EXPECT_NE(no_model.output.find("--model"), std::string::npos);
  const auto bad_port = ServerProcess::run_to_end({kBrainmri, "serve", "--model", kModel.string(), "--port", "70000"});
  EXPECT_EQ(bad_port.exit_code, 2) << bad_port.output;
  const auto bad_method =
      ServerProcess::run_to_end({kBrainmri, "serve", "--model", kModel.string(), "--method", "magic"});
  EXPECT_EQ(bad_method.exit_code, 2) << bad_method.output;
  const auto bad_layer =
      ServerProcess::run_to_end({kBrainmri, "serve", "--model", kModel.string(), "--layer", "conv9"});
  EXPECT_EQ(bad_layer.exit_code, 2) << bad_layer.output;
  EXPECT_NE(bad_layer.output.find("conv3"), std::string::npos) << "the valid layers are listed: " << bad_layer.output;

  const auto not_a_model = ServerProcess::run_to_end(
      {kBrainmri, "serve", "--model", (kModel.parent_path() / "config.ini").string(), "--port", "0"});
  EXPECT_EQ(not_a_model.exit_code, 1) << not_a_model.output;
  EXPECT_NE(not_a_model.output.find("config.ini"), std::string::npos) << not_a_model.output;

  ServerProcess first(kModel, {"--quiet"});
  const auto second = ServerProcess::run_to_end(
      {kBrainmri, "serve", "--model", kModel.string(), "--port", std::to_string(first.port())});
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_NE(second.output.find("cannot listen on 127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << second.output;
}

}  // namespace

// A checkpoint copied alone to an empty directory (no run directory, no dataset beside it) serves
// the same answers: its model card carries the class names and the preprocessing.
TEST(ServeAlone, ACheckpointWithoutItsRunDirectoryServesTheSameAnswers) {
  ASSERT_TRUE(fs::exists(kModel)) << kModel << " is missing: the serve.model test (ctest fixture) makes it";
  ScratchDir alone;
  fs::copy_file(kModel, alone / "model.pt");
  const auto images = sample_images();
  std::vector<std::string> arguments = {kBrainmri,       "predict",          "--json",          "--model",
                                        kModel.string(), images[0].string(), images[3].string()};
  const auto expected = ServerProcess::run_to_end(arguments);
  ASSERT_EQ(expected.exit_code, 0) << expected.output;
  arguments[4] = (alone / "model.pt").string();
  const auto copied = ServerProcess::run_to_end(arguments);
  ASSERT_EQ(copied.exit_code, 0) << copied.output;
  const auto a = json::parse(expected.output)["results"], b = json::parse(copied.output)["results"];
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["prediction"], b[i]["prediction"]);
    EXPECT_EQ(a[i]["probabilities"], b[i]["probabilities"]);
  }

  ServerProcess server(alone / "model.pt");
  auto client = client_for(server.port());
  const auto model = client.Get("/api/model");
  ASSERT_TRUE(model);
  const auto description = json::parse(model->body);
  EXPECT_EQ(description["classes"], json({"glioma", "meningioma", "notumor", "pituitary"})) << description.dump(2);
  EXPECT_EQ(description["input"]["resize_from"], "the checkpoint's model card");
  EXPECT_TRUE(description["source"]["run_directory"].is_null()) << "nothing beside the copy";
  EXPECT_EQ(description["source"]["provenance"]["command"], "train");
  EXPECT_EQ(description["source"]["provenance"]["config_sha256"].get<std::string>().size(), 64u);
  const auto response = post_image(client, read_file(images[3]), images[3].filename().string());
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 200) << response->body;
  const auto body = json::parse(response->body);
  EXPECT_EQ(body["prediction"], b[1]["prediction"]);
  for (const auto& [name, p] : body["probabilities"].items()) {
    EXPECT_NEAR(p.get<double>(), b[1]["probabilities"][name].get<double>(), 1e-5) << name;
  }
}
