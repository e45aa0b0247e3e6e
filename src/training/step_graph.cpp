#include "brainmri/training/step_graph.hpp"

#include <torch/torch.h>

#ifdef BRAINMRI_HAVE_CUDA_GRAPHS
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace brainmri::training {

#ifdef BRAINMRI_HAVE_CUDA_GRAPHS
struct StepGraph::Impl {
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  bool captured = false;
};

namespace {
// Makes `waiting` wait for the work queued so far on `producer`.
void join(const c10::cuda::CUDAStream& producer, const c10::cuda::CUDAStream& waiting) {
  at::cuda::CUDAEvent event;
  event.record(producer);
  event.block(waiting);
}
}  // namespace

StepGraph::StepGraph(std::function<void()> step) : step_(std::move(step)), impl_(std::make_unique<Impl>()) {}
StepGraph::~StepGraph() = default;
bool StepGraph::captured() const { return impl_->captured; }
std::string StepGraph::unavailable_reason() { return torch::cuda::is_available() ? "" : "no CUDA device"; }

bool StepGraph::run(int warmup_steps) {
  if (impl_->captured) {
    impl_->graph->replay();
    return true;
  }
  const auto main = c10::cuda::getCurrentCUDAStream();
  auto side = c10::cuda::getStreamFromPool();
  join(main, side);
  const bool capture_now = calls_++ >= warmup_steps;
  bool ok = true;
  {
    c10::cuda::CUDAStreamGuard on_side(side);
    if (!capture_now) {
      step_();
    } else {
      // Cached bf16 copies of the weights would be made once, inside the capture, and then never
      // refreshed after an optimizer step.
      const bool cache = at::autocast::is_autocast_cache_enabled();
      at::autocast::set_autocast_cache_enabled(false);
      try {
        impl_->graph = std::make_unique<at::cuda::CUDAGraph>();
        impl_->graph->capture_begin();
        step_();
        impl_->graph->capture_end();
        impl_->captured = true;
      } catch (const c10::Error& e) {
        failure_ = e.what_without_backtrace();
        impl_->graph.reset();
        ok = false;
      }
      at::autocast::set_autocast_cache_enabled(cache);
    }
  }
  join(side, main);
  if (impl_->captured) {
    impl_->graph->replay();  // capturing recorded the step without running it
  } else if (!ok) {
    step_();  // this call's step, eagerly
  }
  return ok;
}

#else

struct StepGraph::Impl {};
StepGraph::StepGraph(std::function<void()> step) : step_(std::move(step)), impl_(std::make_unique<Impl>()) {}
StepGraph::~StepGraph() = default;
bool StepGraph::captured() const { return false; }
std::string StepGraph::unavailable_reason() { return "this brainmri was built against a LibTorch without CUDA"; }

bool StepGraph::run(int) {
  failure_ = unavailable_reason();
  step_();
  return false;
}

#endif

}  // namespace brainmri::training
