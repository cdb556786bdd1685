// The one-buffer stream tools as peers: hymig-tcpstream (raw TCP, the baseline) and
// hymig-udtstream (UDT). The receiver populates its buffer before listening; the figures are the
// receiver's (bytes that arrived, and when), so a capped run counts only what was delivered.
#include <csignal>

#include <fmt/format.h>

#include <sstream>

#include "bench/suite/child_process.hpp"
#include "bench/suite/peer.hpp"
#include "core/error.hpp"

namespace hymig::bench {
namespace {

class StreamPeer final : public Peer {
 public:
  StreamPeer(std::string name, std::optional<std::string> program, std::string program_name)
      : name_(std::move(name)), program_(std::move(program)), program_name_(std::move(program_name)) {}

  std::string name() const override { return name_; }
  std::optional<std::string> unavailable() const override {
    if (program_) return std::nullopt;
    return program_name_ + " was not built" +
           (program_name_ == "hymig-udtstream" ? std::string(" (Debian's libudt-dev missing at build time)") : "");
  }

  std::string start_receiver(const RunSpec& spec) override {
    const std::string base = spec.work_dir + "/" + name_ + "-recv";
    recv_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{*program_, "--listen", spec.bind_host + ":0", "--bytes", std::to_string(spec.cell.size)},
        base + ".out", base + ".err");
    // Population of the buffer comes first: allow for slow first-touch faults.
    auto ep = wait_for_line(*recv_, recv_->err_file(), "listening on ", std::chrono::seconds(120));
    if (!ep) throw Error(ErrorKind::io, program_name_ + " did not start: " + first_line(read_file(recv_->err_file())));
    return *ep;
  }

  Measurement run_sender(const RunSpec& spec, const std::string& endpoint) override {
    const std::string base = spec.work_dir + "/" + name_ + "-send";
    ChildProcess send({*program_, "--connect", endpoint, "--bytes", std::to_string(spec.cell.size), "--max-seconds",
                       fmt::format("{}", spec.peer_cap_seconds)},
                      base + ".out", base + ".err");
    const auto st = send.wait_or_stop(spec.timeout);
    if (st.timed_out) return Measurement::failed(fmt::format("{} ran past {} s", program_name_, spec.timeout.count() / 1000));
    const auto j = last_json_line(read_file(send.out_file()));
    if (!st.ok() || j.is_null())
      return Measurement::failed(program_name_ + " (" + st.describe() + "): " + first_line(read_file(send.err_file())));
    Measurement m;
    m.status = Measurement::Status::ok;
    m.seconds = j.value("seconds", 0.0);
    m.bytes = j.value("bytes", std::uint64_t{0});
    m.capped = !j.value("complete", true);
    m.wire_bytes = m.bytes;
    m.sender_cpu_s = j.value("cpu_s", -1.0);
    return m;
  }

  nlohmann::json finish_receiver(const RunSpec& spec) override {
    if (!recv_) return {};
    const auto st = recv_->wait_or_stop(std::chrono::seconds(15));
    nlohmann::json j = last_json_line(read_file(recv_->out_file()));
    if (j.is_null()) j = nlohmann::json::object();
    // A capped sender makes the receiver end early (exit 1) with its figures: that is expected.
    if (!st.ok() && j.value("complete", true))
      j["error"] = program_name_ + " receiver " + st.describe() + ": " + first_line(read_file(recv_->err_file()));
    recv_.reset();
    return j;
  }

  void merge(Measurement& m, const nlohmann::json& receiver) const override {
    Peer::merge(m, receiver);
    if (m.status != Measurement::Status::ok || !receiver.contains("bytes")) return;
    m.bytes = receiver.value("bytes", m.bytes);
    m.seconds = receiver.value("seconds", m.seconds);
    m.capped = !receiver.value("complete", true);
  }

 private:
  std::string name_;
  std::optional<std::string> program_;
  std::string program_name_;
  std::unique_ptr<ChildProcess> recv_;
};

}  // namespace

std::unique_ptr<Peer> make_stream_peer(const std::string& name, const std::optional<std::string>& program,
                                       const std::string& program_name) {
  return std::make_unique<StreamPeer>(name, program, program_name);
}

}  // namespace hymig::bench
