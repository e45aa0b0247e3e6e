#pragma once
// Data-parallel gradient averaging, overlapped with backward.
//
// The parameters that train are planned into buckets (plan_buckets), in reverse registration
// order because backward produces the last layers' gradients first. Each bucket is one flat
// buffer. An autograd hook copies each gradient into its bucket as backward produces it; a full
// bucket's all-reduce starts at once — buckets start strictly in plan order, so every rank
// issues the same collectives in the same order — while backward goes on with earlier layers.
// finish() waits for every bucket and writes the averaged gradients back to the parameters.

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "brainmri/common/enum_names.hpp"
#include "brainmri/distributed/communicator.hpp"

namespace brainmri::distributed {

struct ParameterSlot {
  std::int64_t numel = 0;
  c10::ScalarType dtype = torch::kFloat32;
  std::string device;  // buckets never mix devices or dtypes
};

struct Bucket {
  std::vector<std::size_t> parameters;  // indices into the registration order, in fill order
  std::vector<std::int64_t> offsets;    // element offset of each parameter in the flat buffer
  std::int64_t numel = 0;
  std::size_t bytes = 0;
};

// Pure and deterministic, hence identical on every rank: walks the parameters from last to first
// and closes a bucket when the next parameter would take it past its cap (the first bucket's cap
// is `first_bucket_bytes`, small so the first all-reduce starts early; the rest `bucket_bytes`),
// or changes dtype or device. A parameter larger than the cap gets a bucket of its own.
std::vector<Bucket> plan_buckets(const std::vector<ParameterSlot>& parameters, std::size_t first_bucket_bytes,
                                 std::size_t bucket_bytes);

// bf16: bf16 on the wire, each addition in fp32.
enum class GradientCompression { None, Bf16 };

struct ReducerOptions {
  std::size_t first_bucket_bytes = std::size_t{1} << 20;
  std::size_t bucket_bytes = std::size_t{25} << 20;
  bool overlap = true;  // false: every all-reduce starts after backward (for comparison)
  GradientCompression compression = GradientCompression::None;
};

class GradientReducer {
 public:
  // `parameters`: the model's parameters in registration order; those without requires_grad are
  // left alone.
  GradientReducer(const std::vector<torch::Tensor>& parameters, Communicator& communicator, ReducerOptions options);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Before backward: `label` names this step's collectives in errors and timeouts.
  void prepare(std::string label);
  // After backward: starts the buckets not started yet (a parameter that received no gradient
  // counts as zero on this rank), waits for all and sets every parameter's .grad to the average.
  void finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  void on_gradient(std::size_t parameter, const torch::Tensor& gradient);
  void launch_ready_buckets(bool force);
  void launch(std::size_t bucket);

  std::vector<torch::Tensor> parameters_;  // the trainable ones
  Communicator& communicator_;
  ReducerOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<torch::Tensor> buffers_;   // flat, one per bucket
  std::vector<torch::Tensor> wire_;      // bf16 copies under compression
  std::vector<std::size_t> bucket_of_;   // parameter -> bucket
  std::vector<std::int64_t> offset_of_;  // parameter -> offset in its bucket
  std::vector<unsigned> hook_handles_;
  std::mutex mutex_;
  std::vector<bool> arrived_;                // per parameter, this step
  std::vector<std::size_t> missing_;         // per bucket: gradients still to come
  std::vector<std::shared_ptr<Work>> work_;  // per bucket, this step
  std::size_t next_launch_ = 0;
  std::string label_;
};

// Every rank's model has the same parameters and buffers (count, names, shapes, dtypes); throws
// CommunicationError naming the first rank and tensor that differ. Collective.
void verify_identical_replicas(const torch::nn::Module& model, Communicator& communicator);
// Copies rank 0's parameters and buffers to every rank. Collective.
void broadcast_model_state(torch::nn::Module& model, Communicator& communicator);
// A 64-bit hash of every parameter's bytes, for checking that replicas stay identical.
std::int64_t parameter_checksum(const torch::nn::Module& model);

}  // namespace brainmri::distributed

namespace brainmri {
template <>
struct EnumNames<distributed::GradientCompression> {
  static constexpr std::string_view what = "gradient compression";
  static constexpr std::array names = {std::pair{distributed::GradientCompression::None, std::string_view("none")},
                                       std::pair{distributed::GradientCompression::Bf16, std::string_view("bf16")}};
};
}  // namespace brainmri
