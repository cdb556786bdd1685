#include "testing/fake_channel.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace hymig {
namespace {

using clock = std::chrono::steady_clock;

// One direction of a link: a queue guarded by a mutex, with an eventfd for poll().
struct Pipe {
  struct Item {
    clock::time_point deliver_at;
    std::uint8_t type = 0;
    std::vector<std::byte> body, payload;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> q;
  UniqueFd event{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  bool cut = false;

  void signal() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(event.get(), &one, sizeof one);
    cv.notify_all();
  }
  void drain_event() {
    std::uint64_t v;
    [[maybe_unused]] auto r = ::read(event.get(), &v, sizeof v);
  }
};

class FakeDatagram final : public DatagramChannel {
 public:
  FakeDatagram(std::shared_ptr<Pipe> out, std::shared_ptr<Pipe> in, Impairments imp, int id)
      : out_(std::move(out)), in_(std::move(in)), imp_(imp), rng_(imp.seed * 2 + id), id_(id) {}

  std::string transport_name() const override { return "fake"; }
  // Socket-shaped datagrams; the test builds the receiving twin, never a daemon.
  BulkTransport wire_kind() const override { return BulkTransport::udp; }
  std::size_t max_datagram() const override { return imp_.max_datagram; }
  std::string local_endpoint() const override { return "fake:" + std::to_string(id_); }
  std::string endpoint_host(std::string_view) const override { return "127.0.0.1"; }
  void connect(std::string_view) override {}

  std::size_t send_batch(std::span<const OutDatagram> ds) override {
    std::uniform_real_distribution<double> u(0, 1);
    std::lock_guard lock(out_->mu);
    for (const auto& d : ds) {
      if (d.bytes > imp_.max_datagram) throw Error(ErrorKind::io, "fake datagram larger than max_datagram");
      stats_.datagrams_sent++;
      stats_.bytes_sent += d.bytes;
      if (u(rng_) < imp_.loss) continue;
      if (out_->q.size() >= imp_.queue_limit) continue;  // tail drop: the link is full
      Pipe::Item item;
      item.deliver_at = clock::now() + imp_.delay;
      item.body.reserve(d.bytes);
      for (const auto& part : d.parts) item.body.insert(item.body.end(), part.data, part.data + part.size);
      if (u(rng_) < imp_.corrupt && !item.body.empty())
        item.body[rng_() % item.body.size()] ^= std::byte(1u << (rng_() % 8));
      const int copies = u(rng_) < imp_.duplicate ? 2 : 1;
      for (int c = 0; c < copies; ++c) {
        if (u(rng_) < imp_.reorder && !out_->q.empty()) {
          const std::size_t back = std::min<std::size_t>(out_->q.size(), 1 + rng_() % 8);
          out_->q.insert(out_->q.end() - static_cast<std::ptrdiff_t>(back), item);
        } else {
          out_->q.push_back(item);
        }
      }
    }
    out_->signal();
    return ds.size();
  }

  std::size_t receive_batch(std::span<InDatagram> out, std::chrono::microseconds timeout) override {
    held_.clear();
    std::unique_lock lock(in_->mu);
    const auto deadline = clock::now() + timeout;
    while (true) {
      const auto now = clock::now();
      while (!in_->q.empty() && held_.size() < out.size() && in_->q.front().deliver_at <= now) {
        held_.push_back(std::move(in_->q.front().body));
        in_->q.pop_front();
      }
      if (!held_.empty() || now >= deadline) break;
      auto wake = deadline;
      if (!in_->q.empty()) wake = std::min(wake, in_->q.front().deliver_at);
      in_->cv.wait_until(lock, wake);
    }
    if (in_->q.empty()) in_->drain_event();
    if (!held_.empty() && imp_.receiver_stall.count() > 0) {
      lock.unlock();
      std::this_thread::sleep_for(imp_.receiver_stall);
    }
    for (std::size_t i = 0; i < held_.size(); ++i) {
      out[i].bytes = held_[i];
      stats_.datagrams_received++;
      stats_.bytes_received += held_[i].size();
    }
    return held_.size();
  }

  int poll_fd() const override { return in_->event.get(); }
  DatagramStats stats() const override { return stats_; }

 private:
  std::shared_ptr<Pipe> out_, in_;
  Impairments imp_;
  std::mt19937_64 rng_;
  int id_;
  std::vector<std::vector<std::byte>> held_;
  DatagramStats stats_;
};

class FakeReliable final : public ReliableChannel {
 public:
  FakeReliable(std::shared_ptr<Pipe> out, std::shared_ptr<Pipe> in) : out_(std::move(out)), in_(std::move(in)) {}
  ~FakeReliable() override { cut(); }

  std::string transport_name() const override { return "fake"; }
  void set_limits(std::size_t max_body, std::uint64_t max_payload) override {
    max_body_ = max_body;
    max_payload_ = max_payload;
  }
  void set_io_timeout(std::chrono::milliseconds) override {}

  void send(std::uint8_t type, std::span<const std::byte> body) override { send_with_payload(type, body, {}); }

  void send_with_payload(std::uint8_t type, std::span<const std::byte> body,
                         std::span<const ConstBuffer> payload) override {
    Pipe::Item item;
    item.type = type;
    item.body.assign(body.begin(), body.end());
    for (const auto& p : payload) item.payload.insert(item.payload.end(), p.data, p.data + p.size);
    std::lock_guard lock(out_->mu);
    if (out_->cut) throw Error(ErrorKind::peer_vanished, "fake link cut");
    stats_.messages_sent++;
    stats_.bytes_sent += item.body.size() + item.payload.size();
    out_->q.push_back(std::move(item));
    out_->signal();
  }

  std::optional<Message> receive(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(in_->mu);
    if (!in_->cv.wait_for(lock, timeout, [&] { return !in_->q.empty() || in_->cut; })) return std::nullopt;
    if (in_->q.empty()) throw Error(ErrorKind::peer_vanished, "peer closed the connection (fake link cut)");
    current_ = std::move(in_->q.front());
    in_->q.pop_front();
    if (in_->q.empty()) in_->drain_event();
    if (current_.body.size() > max_body_ || current_.payload.size() > max_payload_)
      throw Error(ErrorKind::protocol, "fake frame exceeds limits");
    stats_.messages_received++;
    stats_.bytes_received += current_.body.size() + current_.payload.size();
    return Message{current_.type, current_.body, current_.payload.size()};
  }

  void receive_payload(std::span<const MutableBuffer> dst) override {
    std::size_t off = 0;
    for (const auto& d : dst) {
      if (off + d.size > current_.payload.size()) throw Error(ErrorKind::protocol, "payload shorter than buffers");
      std::memcpy(d.data, current_.payload.data() + off, d.size);
      off += d.size;
    }
    current_.payload.clear();
  }
  void discard_payload() override { current_.payload.clear(); }

  int poll_fd() const override { return in_->event.get(); }
  std::string local_host() const override { return "127.0.0.1"; }
  std::string peer_host() const override { return "127.0.0.1"; }
  ReliableStats stats() const override { return stats_; }

  void cut() {
    for (auto* p : {out_.get(), in_.get()}) {
      std::lock_guard lock(p->mu);
      p->cut = true;
      p->signal();
    }
  }

 private:
  std::shared_ptr<Pipe> out_, in_;
  Pipe::Item current_;
  std::size_t max_body_ = 1 << 20;
  std::uint64_t max_payload_ = 64 << 20;
  ReliableStats stats_;
};

}  // namespace

FakeDatagramPair make_fake_datagram_pair(const Impairments& imp) {
  auto ab = std::make_shared<Pipe>(), ba = std::make_shared<Pipe>();
  return {std::make_unique<FakeDatagram>(ab, ba, imp, 0), std::make_unique<FakeDatagram>(ba, ab, imp, 1)};
}

FakeReliablePair make_fake_reliable_pair() {
  auto ab = std::make_shared<Pipe>(), ba = std::make_shared<Pipe>();
  return {std::make_unique<FakeReliable>(ab, ba), std::make_unique<FakeReliable>(ba, ab)};
}

void cut_fake_reliable(ReliableChannel& end) {
  if (auto* f = dynamic_cast<FakeReliable*>(&end)) f->cut();
}

}  // namespace hymig
