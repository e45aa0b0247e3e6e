#include "brainmri/distributed/gradient_reducer.hpp"

#include <algorithm>
#include <sstream>
#include <string_view>

namespace brainmri::distributed {
namespace {

constexpr std::uint64_t kFnvOffset = 1469598103934665603ULL;
constexpr std::uint64_t kFnvPrime = 1099511628211ULL;

std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t hash = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * kFnvPrime;
  return hash;
}

std::string describe_tensor(const std::string& name, const torch::Tensor& t) {
  std::ostringstream text;
  text << name << " " << t.sizes() << " " << t.scalar_type();
  return text.str();
}

std::vector<std::pair<std::string, torch::Tensor>> model_tensors(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  // Whether a parameter trains changes the bucket plan, so it is part of what must agree.
  for (const auto& item : model.named_parameters()) {
    tensors.emplace_back((item.value().requires_grad() ? "parameter " : "frozen parameter ") + item.key(),
                         item.value());
  }
  for (const auto& item : model.named_buffers()) tensors.emplace_back("buffer " + item.key(), item.value());
  return tensors;
}

}  // namespace

std::vector<Bucket> plan_buckets(const std::vector<ParameterSlot>& parameters, std::size_t first_bucket_bytes,
                                 std::size_t bucket_bytes) {
  std::vector<Bucket> buckets;
  Bucket current;
  const ParameterSlot* current_kind = nullptr;
  auto close = [&] {
    if (!current.parameters.empty()) buckets.push_back(std::move(current));
    current = Bucket{};
  };
  for (std::size_t i = parameters.size(); i-- > 0;) {
    const auto& p = parameters[i];
    const std::size_t bytes = static_cast<std::size_t>(p.numel) * c10::elementSize(p.dtype);
    const std::size_t cap = buckets.empty() ? first_bucket_bytes : bucket_bytes;
    const bool other_kind =
        current_kind != nullptr && (current_kind->dtype != p.dtype || current_kind->device != p.device);
    if (!current.parameters.empty() && (other_kind || current.bytes + bytes > cap)) close();
    current.parameters.push_back(i);
    current.offsets.push_back(current.numel);
    current.numel += p.numel;
    current.bytes += bytes;
    current_kind = &p;
  }
  close();
  return buckets;
}

GradientReducer::GradientReducer(const std::vector<torch::Tensor>& parameters, Communicator& communicator,
                                 ReducerOptions options)
    : communicator_(communicator), options_(std::move(options)) {
  std::vector<ParameterSlot> slots;
  for (const auto& p : parameters) {
    if (!p.requires_grad()) continue;
    parameters_.push_back(p);
    slots.push_back({p.numel(), p.scalar_type(), p.device().str()});
  }
  buckets_ = plan_buckets(slots, options_.first_bucket_bytes, options_.bucket_bytes);
  bucket_of_.resize(parameters_.size());
  offset_of_.resize(parameters_.size());
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    const auto& bucket = buckets_[b];
    const auto& first = parameters_[bucket.parameters.front()];
    buffers_.push_back(torch::zeros({bucket.numel}, first.options().requires_grad(false)));
    if (options_.compression == GradientCompression::Bf16)
      wire_.push_back(torch::zeros({bucket.numel}, buffers_.back().options().dtype(torch::kBFloat16)));
    for (std::size_t j = 0; j < bucket.parameters.size(); ++j) {
      bucket_of_[bucket.parameters[j]] = b;
      offset_of_[bucket.parameters[j]] = bucket.offsets[j];
    }
  }
  arrived_.assign(parameters_.size(), false);
  missing_.assign(buckets_.size(), 0);
  work_.assign(buckets_.size(), nullptr);
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    hook_handles_.push_back(
        parameters_[i].register_hook([this, i](const torch::Tensor& gradient) { on_gradient(i, gradient); }));
  }
}

GradientReducer::~GradientReducer() {
  for (std::size_t i = 0; i < parameters_.size(); ++i) parameters_[i].remove_hook(hook_handles_[i]);
}

void GradientReducer::prepare(std::string label) {
  std::lock_guard lock(mutex_);
  label_ = std::move(label);
  std::fill(arrived_.begin(), arrived_.end(), false);
  for (std::size_t b = 0; b < buckets_.size(); ++b) missing_[b] = buckets_[b].parameters.size();
  std::fill(work_.begin(), work_.end(), nullptr);
  next_launch_ = 0;
}

void GradientReducer::on_gradient(std::size_t parameter, const torch::Tensor& gradient) {
  std::lock_guard lock(mutex_);
  if (arrived_[parameter]) {
    throw CommunicationError("a parameter of shape " + describe_tensor("", parameters_[parameter]) +
                             " received a second gradient in one backward pass; the reducer supports each parameter "
                             "being used once per forward");
  }
  arrived_[parameter] = true;
  const auto b = bucket_of_[parameter];
  const auto& p = parameters_[parameter];
  auto slot = buffers_[b].narrow(0, offset_of_[parameter], p.numel());
  if (gradient.defined()) {
    slot.view(p.sizes()).copy_(gradient);
  } else {
    slot.zero_();  // autograd may pass an undefined gradient for a branch that contributed nothing
  }
  --missing_[b];
  if (options_.overlap) launch_ready_buckets(false);
}

void GradientReducer::launch_ready_buckets(bool force) {
  while (next_launch_ < buckets_.size() && (force || missing_[next_launch_] == 0)) launch(next_launch_++);
}

void GradientReducer::launch(std::size_t b) {
  if (missing_[b] > 0) {
    // Parameters without a gradient this step (unused in the forward) contribute zero.
    for (std::size_t j = 0; j < buckets_[b].parameters.size(); ++j) {
      const auto parameter = buckets_[b].parameters[j];
      if (!arrived_[parameter]) buffers_[b].narrow(0, buckets_[b].offsets[j], parameters_[parameter].numel()).zero_();
    }
  }
  const std::string label = label_ + " bucket " + std::to_string(b + 1) + "/" + std::to_string(buckets_.size());
  if (options_.compression == GradientCompression::Bf16) {
    wire_[b].copy_(buffers_[b]);
    work_[b] = communicator_.allreduce_async(wire_[b], ReduceOp::Sum, label);
  } else {
    work_[b] = communicator_.allreduce_async(buffers_[b], ReduceOp::Average, label);
  }
}

void GradientReducer::finish() {
  {
    std::lock_guard lock(mutex_);
    launch_ready_buckets(true);
  }
  torch::NoGradGuard no_grad;
  const auto world = static_cast<double>(communicator_.size());
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    work_[b]->wait();
    if (options_.compression == GradientCompression::Bf16) buffers_[b].copy_(wire_[b]).div_(world);
    for (std::size_t j = 0; j < buckets_[b].parameters.size(); ++j) {
      auto& p = parameters_[buckets_[b].parameters[j]];
      const auto averaged = buffers_[b].narrow(0, buckets_[b].offsets[j], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(averaged);
      } else {
        p.mutable_grad() = averaged.clone();
      }
    }
  }
}

void verify_identical_replicas(const torch::nn::Module& model, Communicator& communicator) {
  const auto tensors = model_tensors(model);
  std::vector<std::int64_t> signature{static_cast<std::int64_t>(tensors.size())};
  for (const auto& [name, tensor] : tensors) {
    const auto description = describe_tensor(name, tensor);
    signature.push_back(static_cast<std::int64_t>(fnv1a(description.data(), description.size())));
  }
  const auto all = communicator.allgatherv(torch::tensor(signature, torch::kInt64), "model check");
  const auto* v = all.data_ptr<std::int64_t>();
  std::vector<std::vector<std::int64_t>> per_rank;
  for (std::int64_t offset = 0; offset < all.numel();) {
    const auto count = v[offset];
    per_rank.emplace_back(v + offset + 1, v + offset + 1 + count);
    offset += count + 1;
  }
  const auto& reference = per_rank.front();
  for (std::size_t r = 1; r < per_rank.size(); ++r) {
    if (per_rank[r].size() != reference.size()) {
      throw CommunicationError("the model on rank " + std::to_string(r) + " has " + std::to_string(per_rank[r].size()) +
                               " parameters and buffers, rank 0's has " + std::to_string(reference.size()) +
                               "; every rank must build the same model (same architecture, width, filters ...)");
    }
    for (std::size_t i = 0; i < reference.size(); ++i) {
      if (per_rank[r][i] != reference[i]) {
        throw CommunicationError("the model on rank " + std::to_string(r) + " differs from rank 0's at tensor #" +
                                 std::to_string(i) + " (on rank " + std::to_string(communicator.rank()) + ": " +
                                 describe_tensor(tensors[i].first, tensors[i].second) +
                                 "); every rank must build the same model");
      }
    }
  }
}

void broadcast_model_state(torch::nn::Module& model, Communicator& communicator) {
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : model_tensors(model)) communicator.broadcast(tensor, 0, "initial " + name);
}

std::int64_t parameter_checksum(const torch::nn::Module& model) {
  std::uint64_t hash = kFnvOffset;
  for (const auto& p : model.parameters()) {
    const auto bytes = p.detach().to(torch::kCPU).contiguous();
    hash = fnv1a(bytes.data_ptr(), static_cast<std::size_t>(bytes.numel()) * bytes.element_size(), hash);
  }
  return static_cast<std::int64_t>(hash);
}

}  // namespace brainmri::distributed
