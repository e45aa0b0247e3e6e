#pragma once
// The whole training step — forward, loss, backward, optimizer step — captured once in a CUDA
// graph and replayed for every later batch: one launch instead of hundreds of small kernels,
// which is where a small network on a large GPU loses most of its time.
//
// The step reads its batch from static input tensors and writes its loss and correct count into
// static outputs (the trainer copies each batch in and accumulates the outputs on the device), so
// every replay uses the same memory. What the captured step must respect: fixed batch shapes
// (drop_last), gradients zeroed in place, no host synchronisation inside the step (no .item()),
// a capturable optimizer (FusedAdam: its learning rate and step counts are device tensors), the
// autocast weight cache off, and dropout's generator state advanced by the graph itself.
//
// Built only against a CUDA LibTorch (BRAINMRI_HAVE_CUDA_GRAPHS); elsewhere, and whenever capture
// fails, the trainer runs the same step eagerly and logs why.

#include <functional>
#include <memory>
#include <string>

namespace brainmri::training {

class StepGraph {
 public:
  // `step`: one training step on the static tensors; run eagerly for the warm-up, then captured.
  explicit StepGraph(std::function<void()> step);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Runs the step: eagerly for the first `warmup_steps` calls (on a side stream, so that the
  // libraries' lazy initialisation and the allocator settle), captures it at the next call and
  // replays from then on. Returns false, with the reason in failure(), when capture failed; the
  // step of that call has then run eagerly and the caller should stay eager.
  bool run(int warmup_steps);
  const std::string& failure() const { return failure_; }
  bool captured() const;

  // Whether this build can capture at all; "" if so, else why not.
  static std::string unavailable_reason();

 private:
  struct Impl;
  std::function<void()> step_;
  std::unique_ptr<Impl> impl_;
  int calls_ = 0;
  std::string failure_;
};

}  // namespace brainmri::training
