#pragma once
// The HTTP face of a model: the page (served from the binary itself) and the JSON API
// (docs/serve.md). Requests are handled by a pool of HTTP worker threads; the model itself is
// driven by an InferenceQueue, one batch at a time.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "brainmri/common/option_table.hpp"
#include "brainmri/inference/inference_model.hpp"

namespace brainmri::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                            // 0: any free port (bind() says which)
  int threads = 8;                            // HTTP worker threads
  std::size_t max_upload_bytes = 10'000'000;  // larger uploads get 413 (10 MB, as --max-upload-mb says)
  std::int64_t max_pixels = 50'000'000;       // so do images that would decode to more pixels
  int max_batch = 16;                         // images per model call
  std::size_t max_pending = 256;              // more waiting requests get 503
  double overlay_opacity = 0.45;              // of the heat map in the API's overlay PNG
  int display_size = 384;                     // pixels of the overlay PNG the API returns (at least)
};

// The options of `brainmri serve` bound to the fields above (sizes in MB and megapixels).
const std::vector<Option<ServerOptions>>& server_options();
// Throws ConfigError naming the option whose value is out of range.
void validate(const ServerOptions& options);

class PredictionServer {
 public:
  using Log = std::function<void(const std::string& line)>;

  PredictionServer(inference::InferenceModel& model, ServerOptions options, Log log);
  ~PredictionServer();
  PredictionServer(const PredictionServer&) = delete;
  PredictionServer& operator=(const PredictionServer&) = delete;

  // Binds the listening socket and returns its port; throws std::runtime_error naming the address
  // when it cannot (in use, not a local address, no permission).
  int bind();
  // Serves until stop(); then finishes the requests already received and returns.
  void serve();
  // Safe from any thread, any number of times.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace brainmri::serve
