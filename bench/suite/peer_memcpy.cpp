// memcpy between two populated buffers on the sender rank: the memory limit that every transport
// landing bytes in memory is bounded by. One thread, like one receive path.
#include <cstring>

#include "bench/stream_buffer.hpp"
#include "bench/suite/peer.hpp"

namespace hymig::bench {
namespace {

class MemcpyPeer final : public Peer {
 public:
  std::string name() const override { return "memcpy"; }
  bool uses_network() const override { return false; }
  std::optional<std::string> unavailable() const override { return std::nullopt; }
  std::string start_receiver(const RunSpec&) override { return "-"; }
  nlohmann::json finish_receiver(const RunSpec&) override { return {}; }

  Measurement run_sender(const RunSpec& spec, const std::string&) override {
    Mapping src = populated_buffer(spec.cell.size), dst = populated_buffer(spec.cell.size);
    fill_incompressible(src.span());
    const auto start = std::chrono::steady_clock::now();
    std::memcpy(dst.data(), src.data(), spec.cell.size);
    Measurement m;
    m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Reading the copy back keeps the compiler from dropping it.
    m.status = std::memcmp(dst.data() + spec.cell.size / 2, src.data() + spec.cell.size / 2, 64) == 0
                   ? Measurement::Status::ok
                   : Measurement::Status::failed;
    m.bytes = spec.cell.size;
    return m;
  }
};

}  // namespace

std::unique_ptr<Peer> make_memcpy_peer() { return std::make_unique<MemcpyPeer>(); }

}  // namespace hymig::bench
