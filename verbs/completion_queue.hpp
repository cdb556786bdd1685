// A completion queue, optionally with its own completion channel, polled in batches; the channel's
// descriptor (non-blocking) is what a receiver waits on.
//
// The rule that keeps a poll()-er from sleeping through completions: after a poll found the CQ
// empty, call arm(); it re-arms the CQ unless it is armed already with no event since, and says
// whether the CQ must be polled once more (completions may have slipped in before the arm). An
// event on the channel is consumed by consume_event() and acknowledged in batches; the destructor
// acknowledges the rest before destroying the CQ (ibv_destroy_cq would wait for them forever).
#pragma once

#include <infiniband/verbs.h>

#include <chrono>
#include <span>
#include <string>

#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

class CompletionQueue {
 public:
  CompletionQueue() = default;
  // `what` names the queue in errors ("UD receive CQ on rxe0"). Throws Error{io}.
  CompletionQueue(ibv_context* ctx, int entries, bool with_channel, std::string what);
  CompletionQueue(CompletionQueue&&) = delete;
  CompletionQueue& operator=(CompletionQueue&&) = delete;
  ~CompletionQueue();

  ibv_cq* get() const { return cq_.get(); }
  int fd() const { return channel_ ? channel_->fd : -1; }  // -1 without a channel

  // ibv_poll_cq into `wc`; returns how many. Throws Error{io} if the provider fails.
  std::size_t poll(std::span<ibv_wc> wc);

  // After a poll came back short: make sure the next completion makes fd() readable. Returns true
  // when the caller must poll again before sleeping. Throws Error{io}.
  bool arm();
  bool armed() const { return armed_; }

  // Takes one pending event off the channel without blocking; false if there is none.
  bool consume_event();

  // Waits up to `timeout` for fd() to turn readable and consumes the event; false on timeout.
  // Call arm() (and poll again if it says so) first.
  bool wait(std::chrono::nanoseconds timeout);

 private:
  void ack_pending();

  std::string what_;
  CompChannelPtr channel_;  // declared first: destroyed after the CQ
  CqPtr cq_;
  unsigned unacked_ = 0;
  bool armed_ = false;
};

// For a queue pair's teardown, once it is in the error state: takes up to `outstanding` flushed
// completions off both queues, for at most 200 ms, so nothing the device still owns is freed under
// it. `scratch` is any completion array.
void drain_flushed(CompletionQueue& recv, CompletionQueue& send, std::uint64_t outstanding, std::span<ibv_wc> scratch);

}  // namespace hymig::verbs
