#include "verbs/completion_queue.hpp"

#include <fcntl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "core/error.hpp"
#include "core/fd_wait.hpp"

namespace hymig::verbs {

namespace {
constexpr unsigned kAckBatch = 64;  // ibv_ack_cq_events takes a mutex: ack many at once
}

CompletionQueue::CompletionQueue(ibv_context* ctx, int entries, bool with_channel, std::string what)
    : what_(std::move(what)) {
  if (with_channel) {
    channel_.reset(ibv_create_comp_channel(ctx));
    if (!channel_) throw_errno("cannot create a completion channel for the " + what_);
    const int flags = ::fcntl(channel_->fd, F_GETFL);
    if (flags < 0 || ::fcntl(channel_->fd, F_SETFL, flags | O_NONBLOCK) != 0)
      throw_errno("cannot make the completion channel of the " + what_ + " non-blocking");
  }
  cq_.reset(ibv_create_cq(ctx, entries, nullptr, channel_.get(), 0));
  if (!cq_) throw_errno("cannot create the " + what_ + " with " + std::to_string(entries) + " entries");
}

CompletionQueue::~CompletionQueue() {
  if (!cq_) return;
  ack_pending();
  cq_.reset();
}

void CompletionQueue::ack_pending() {
  if (unacked_ > 0) ibv_ack_cq_events(cq_.get(), unacked_);
  unacked_ = 0;
}

std::size_t CompletionQueue::poll(std::span<ibv_wc> wc) {
  const int n = ibv_poll_cq(cq_.get(), static_cast<int>(wc.size()), wc.data());
  if (n < 0) throw Error(ErrorKind::io, "polling the " + what_ + " failed (" + std::to_string(n) + "): device gone?");
  return std::size_t(n);
}

bool CompletionQueue::consume_event() {
  if (!channel_) return false;
  ibv_cq* ev_cq = nullptr;
  void* ev_ctx = nullptr;
  if (ibv_get_cq_event(channel_.get(), &ev_cq, &ev_ctx) != 0) return false;  // EAGAIN: none pending
  armed_ = false;  // an event disarms the CQ
  if (++unacked_ >= kAckBatch) ack_pending();
  return true;
}

bool CompletionQueue::arm() {
  if (!channel_) return false;
  // Armed and no event since: nothing arrived after the arm, and what arrives next will fire.
  if (armed_ && !consume_event()) return false;
  const int rc = ibv_req_notify_cq(cq_.get(), 0);
  if (rc != 0) throw_errno("cannot arm the " + what_ + " for completion events", rc);
  armed_ = true;
  return true;
}

bool CompletionQueue::wait(std::chrono::nanoseconds timeout) {
  if (!channel_) return false;
  if (!wait_fd(channel_->fd, POLLIN, timeout)) return false;
  consume_event();
  return true;
}

void drain_flushed(CompletionQueue& recv, CompletionQueue& send, std::uint64_t outstanding, std::span<ibv_wc> scratch) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (outstanding > 0 && std::chrono::steady_clock::now() < deadline) {
    std::size_t n = 0;
    try {
      n = recv.poll(scratch) + send.poll(scratch);
    } catch (const Error&) {
      return;
    }
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    outstanding -= std::min<std::uint64_t>(outstanding, n);
  }
}

}  // namespace hymig::verbs
