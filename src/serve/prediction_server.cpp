#include "brainmri/serve/prediction_server.hpp"

#include <httplib.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <thread>

#include "brainmri/serve/inference_queue.hpp"
#include "brainmri/serve/page.hpp"

namespace brainmri::serve {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kNotice =
    "Research software: not a medical device. Its output is not a diagnosis and must not guide the care of a patient.";

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Uploaded file names need not be UTF-8; they are answered with U+FFFD rather than failing.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void reply_error(httplib::Response& res, int status, const std::string& message) {
  reply(res, status, json{{"error", message}, {"status", status}});
}

std::string megabytes(std::size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

// cpp-httplib 0.11 listens with a backlog of 5 connections. A burst of more clients than that
// overflows the kernel's accept queue, and some of their connections are then reset before the
// server reads them (the 50-client test saw it about one run in ten), so the backlog is widened
// once bound: listen() again on a listening socket only changes its backlog.
class HttpServer : public httplib::Server {
 public:
  void widen_backlog() { ::listen(svr_sock_, SOMAXCONN); }
};

}  // namespace

struct PredictionServer::Impl {
  Impl(inference::InferenceModel& model_, ServerOptions options_, Log log_)
      : model(model_),
        options(std::move(options_)),
        log(std::move(log_)),
        queue(
            [this](const torch::Tensor& images, bool explain) {
              auto predictions = model.predict(images, explain);
              return std::make_pair(predictions.probabilities, predictions.maps);
            },
            QueueOptions{options.max_batch, options.max_pending}) {}

  void add_routes();
  void predict(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read);
  json health() const;

  inference::InferenceModel& model;
  ServerOptions options;
  Log log;
  InferenceQueue queue;
  HttpServer http;
  Clock::time_point started = Clock::now();
  std::atomic<bool> stop_requested{false};
  std::atomic<std::size_t> rejected_inputs{0};
  std::atomic<std::size_t> busy_replies{0};
};

void PredictionServer::Impl::add_routes() {
  const auto page = [](const httplib::Request&, httplib::Response& res) {
    // Everything the page needs is inline; nothing may be fetched from elsewhere.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
                   "connect-src 'self'; form-action 'none'; base-uri 'none'");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-store");
    res.set_content(page_html(), "text/html; charset=utf-8");
  };
  http.Get("/", page);
  http.Get("/index.html", page);
  http.Get("/favicon.ico", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  http.Get("/api/health", [this](const httplib::Request&, httplib::Response& res) { reply(res, 200, health()); });
  http.Get("/api/model", [this](const httplib::Request&, httplib::Response& res) {
    auto description = model.description();
    description["limits"] = {{"max_upload_bytes", options.max_upload_bytes},
                             {"max_pixels", options.max_pixels},
                             {"max_batch", options.max_batch},
                             {"max_pending", options.max_pending}};
    description["notice"] = kNotice;
    reply(res, 200, description);
  });
  http.Post("/api/predict", [this](const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& read) { predict(req, res, read); });
  http.Get("/api/predict", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Allow", "POST");
    reply_error(res, 405, "POST an image to /api/predict (multipart/form-data, field 'image')");
  });

  // Answers httplib makes itself (no route, body too large, malformed request) get a JSON body too.
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      reply_error(res, 404,
                  "nothing at " + req.path + ": the page is /, the API is /api/predict, /api/model and /api/health");
    } else if (res.status == 413) {
      reply_error(res, 413, "the upload is larger than this server's limit of " + megabytes(options.max_upload_bytes));
    } else {
      reply_error(res, res.status, "the request could not be handled (HTTP " + std::to_string(res.status) + ")");
    }
  });
  http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log("error while answering " + req.method + " " + req.path + ": " + what);
    reply_error(res, 500, "internal error: " + what);
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    log(req.remote_addr + " " + req.method + " " + req.path + " " + std::to_string(res.status) + " " +
        std::to_string(res.body.size()) + " bytes");
  });
}

json PredictionServer::Impl::health() const {
  const auto stats = queue.statistics();
  return {{"status", "ok"},
          {"model", model.name()},
          {"version", model.version()},
          {"uptime_seconds", std::chrono::duration<double>(Clock::now() - started).count()},
          {"requests",
           {{"classified", stats.served},
            {"failed", stats.failed},
            {"rejected_inputs", rejected_inputs.load()},
            {"busy", busy_replies.load()},
            {"waiting", stats.pending},
            {"batches", stats.batches},
            {"largest_batch", stats.largest_batch}}}};
}

void PredictionServer::Impl::predict(const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& read) {
  const auto begin = Clock::now();
  const std::size_t limit = options.max_upload_bytes;
  std::string image;
  std::string filename;
  bool found = false;
  bool receiving = false;
  bool too_large = false;
  const auto receive = [&](const char* data, std::size_t length) {
    if (!receiving) return true;
    if (image.size() + length > limit) {
      too_large = true;
      return false;  // stop reading: the rest is not wanted
    }
    image.append(data, length);
    return true;
  };
  bool complete = false;
  if (req.is_multipart_form_data()) {
    complete = read(
        [&](const httplib::MultipartFormData& part) {
          receiving = part.name == "image" && !found;
          if (receiving) {
            found = true;
            filename = part.filename;
          }
          return true;
        },
        receive);
  } else {
    found = receiving = true;  // the body is the image
    complete = read(receive);
  }
  if (too_large || res.status == 413) {
    ++rejected_inputs;
    reply_error(
        res, 413,
        "the image is larger than this server's limit of " + megabytes(limit) + " (brainmri serve --max-upload-mb)");
    return;
  }
  if (!complete) {
    ++rejected_inputs;
    reply_error(res, 400, "the upload could not be read: the body was cut short or is not well-formed multipart data");
    return;
  }
  if (!found) {
    ++rejected_inputs;
    reply_error(res, 400,
                "no field named 'image' in the form: send the file as multipart/form-data field 'image' "
                "(curl -F image=@slice.jpg URL/api/predict)");
    return;
  }
  if (image.empty()) {
    ++rejected_inputs;
    reply_error(res, 400, "the uploaded image is empty (0 bytes)");
    return;
  }

  const bool explain = model.can_explain() && req.get_param_value("explain") != "false";
  inference::PreparedImage prepared;
  try {
    prepared = model.prepare({reinterpret_cast<const std::uint8_t*>(image.data()), image.size()},
                             imaging::DecodeLimits{options.max_pixels});
  } catch (const imaging::ImageTooLarge& e) {
    ++rejected_inputs;
    reply_error(res, 413, std::string(e.what()) + " (brainmri serve --max-megapixels)");
    return;
  } catch (const std::exception& e) {  // ImageRejected, or OpenCV on data it chokes on
    ++rejected_inputs;
    reply_error(res, 400,
                "not an image this server can read" + (filename.empty() ? std::string() : " ('" + filename + "')") +
                    ": " + e.what() + ". Upload a JPEG, PNG, BMP or TIFF slice.");
    return;
  }
  const double prepared_ms = milliseconds_since(begin);

  std::future<InferenceOutput> pending;
  try {
    pending = queue.submit(prepared.input, explain);
  } catch (const QueueFull& e) {
    ++busy_replies;
    res.set_header("Retry-After", "1");
    reply_error(res, 503, std::string("the server is busy (") + e.what() + "); retry in a moment");
    return;
  }
  const auto output = pending.get();  // a model failure propagates to the exception handler: 500
  const auto encode_start = Clock::now();

  const auto& classes = model.class_names();
  const auto probabilities = output.probabilities.to(torch::kFloat64).contiguous();
  const auto predicted = probabilities.argmax().item<std::int64_t>();
  json by_class = json::object();
  for (std::size_t k = 0; k < classes.size(); ++k) {
    by_class[classes[k]] = probabilities[static_cast<std::int64_t>(k)].item<double>();
  }
  // The slice and the map at the network's resolution (the page scales them; an order of magnitude
  // fewer bytes), the ready-made overlay at display size.
  const auto slice = inference::slice_for_display(prepared.preprocessed.pixels);
  json explanation = nullptr;
  if (output.map.defined()) {
    const auto heat = inference::heatmap_for_display(output.map);
    const auto overlay =
        inference::blend(inference::enlarge_for_display(slice, options.display_size),
                         inference::enlarge_for_display(heat, options.display_size), options.overlay_opacity);
    explanation = {{"method", explain::display_name(model.method())},
                   {"layer", model.explained_layer()},
                   {"explains", classes[static_cast<std::size_t>(predicted)]},
                   {"overlay_opacity", options.overlay_opacity},
                   {"overlay_png", base64(inference::encode_png(overlay))},
                   {"heatmap_png", base64(inference::encode_png(heat))}};
  }
  const auto& source = prepared.preprocessed;
  const json body = {{"prediction", classes[static_cast<std::size_t>(predicted)]},
                     {"confidence", probabilities[predicted].item<double>()},
                     {"probabilities", by_class},
                     {"classes", classes},
                     {"model", {{"name", model.name()}, {"version", model.version()}}},
                     {"input_png", base64(inference::encode_png(slice))},
                     {"explanation", explanation},
                     {"image",
                      {{"filename", filename},
                       {"bytes", image.size()},
                       {"width", source.source_width},
                       {"height", source.source_height},
                       {"channels", source.source_channels},
                       {"bit_depth", source.source_bit_depth},
                       {"colour_discarded", source.colour_discarded}}},
                     {"batch_size", output.batch_size},
                     {"timing_ms",
                      {{"decode_and_preprocess", prepared_ms},
                       {"queue", output.waited_ms},
                       {"model", output.computed_ms},
                       {"encode", milliseconds_since(encode_start)},
                       {"total", milliseconds_since(begin)}}},
                     {"notice", kNotice}};
  reply(res, 200, body);
}

PredictionServer::PredictionServer(inference::InferenceModel& model, ServerOptions options, Log log)
    : impl_(std::make_unique<Impl>(model, std::move(options), std::move(log))) {
  auto& http = impl_->http;
  const int threads = std::max(1, impl_->options.threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  // Room for the multipart headers around an image of the largest size; the image itself is held
  // to the limit exactly while it is read.
  // httplib sets SO_REUSEPORT on every listening socket, with which a second server on a busy port
  // would start and silently take half the requests; it is turned off again (SO_REUSEADDR stays:
  // a restart need not wait out TIME_WAIT).
  http.set_socket_options([](socket_t sock) {
    int yes = 1, no = 0;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
#ifdef SO_REUSEPORT
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEPORT, &no, sizeof no);
#endif
  });
  http.set_payload_max_length(impl_->options.max_upload_bytes + (64u << 10));
  impl_->add_routes();
}

// The HTTP server goes first (declared after the queue), then the queue answers what waits.
PredictionServer::~PredictionServer() = default;

int PredictionServer::bind() {
  const auto& o = impl_->options;
  int port = o.port;
  if (o.port == 0) {
    port = impl_->http.bind_to_any_port(o.host);
  } else if (!impl_->http.bind_to_port(o.host, o.port)) {
    port = -1;
  }
  if (port >= 0) impl_->http.widen_backlog();
  if (port < 0) {
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                             " (the port is in use, or the host is not an address of this machine); pick another "
                             "with --port (0: any free port) or --host");
  }
  return port;
}

void PredictionServer::serve() {
  // httplib's stop() works only while the server runs, and only once (a second call trips an
  // assertion), so one thread makes that call, as soon as both a stop was asked for and the server
  // runs: a signal during start-up is not lost.
  std::atomic<bool> listening_ended{false};
  std::thread stopper([&] {
    while (!listening_ended) {
      if (impl_->stop_requested && impl_->http.is_running()) {
        impl_->http.stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  impl_->http.listen_after_bind();  // returns after stop(), once every worker thread has finished
  listening_ended = true;
  stopper.join();
  impl_->queue.shutdown();
}

void PredictionServer::stop() { impl_->stop_requested = true; }

namespace {

// A limit given in millions (MB, megapixels) and kept as a count.
template <typename Count>
Option<ServerOptions> millions_option(const char* name, const char* help, Count ServerOptions::*field) {
  return bind_scaled_option<ServerOptions>(
      name, "brainmri serve", help, [field](auto& o) -> auto& { return o.*field; }, 1e6, 1e4);
}

}  // namespace

const std::vector<Option<ServerOptions>>& server_options() {
  using S = ServerOptions;
  constexpr const char* kGroup = "brainmri serve";
  // clang-format off
  static const std::vector<Option<S>> table = {
    bind_option<S>("host", kGroup, "address to listen on (0.0.0.0: every interface; think first: there is no authentication)", [](auto& o) -> auto& { return o.host; }),
    bind_option<S>("port", kGroup, "port to listen on (0: any free port, printed at start)", [](auto& o) -> auto& { return o.port; }),
    bind_option<S>("threads", kGroup, "HTTP worker threads (requests handled at once)", [](auto& o) -> auto& { return o.threads; }),
    millions_option("max-upload-mb", "largest image accepted, in MB (larger: HTTP 413)", &S::max_upload_bytes),
    millions_option("max-megapixels", "largest image accepted, in millions of pixels its header declares (larger: HTTP 413)", &S::max_pixels),
    bind_option<S>("max-batch", kGroup, "images classified together in one model call", [](auto& o) -> auto& { return o.max_batch; }),
    bind_option<S>("max-waiting", kGroup, "requests that may wait for the model (more: HTTP 503)", [](auto& o) -> auto& { return o.max_pending; }),
  };
  // clang-format on
  return table;
}

void validate(const ServerOptions& options) {
  if (options.port < 0 || options.port > 65535) throw ConfigError("port", "must be 0..65535");
  if (options.threads < 1) throw ConfigError("threads", "must be at least 1");
  if (options.max_batch < 1) throw ConfigError("max-batch", "must be at least 1");
  if (options.max_pending < 1) throw ConfigError("max-waiting", "must be at least 1");
}

}  // namespace brainmri::serve
