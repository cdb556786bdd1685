// iperf3 (TCP: the kernel's default congestion control, or RunSpec::tcp_congestion) as a peer: `iperf3 -s -1` on the
// receiver rank, `iperf3 -c -n SIZE -J` on the sender. A run past the cap is interrupted (SIGINT makes iperf3 print its
// JSON with what the sender moved so far).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <csignal>

#include <fmt/format.h>

#include "bench/suite/child_process.hpp"
#include "bench/suite/peer.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/unique_fd.hpp"

namespace hymig::bench {
namespace {

// iperf3 cannot listen on port 0 and say which port it got: ask the kernel for a free one.
std::uint16_t free_tcp_port(const std::string& host) {
  const SocketAddress a = resolve_host(host, 0, SOCK_STREAM, true).front();
  UniqueFd fd(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::bind(fd.get(), a.get(), a.length) != 0) throw_errno("bind a probe socket on " + host);
  return address_port(local_address_of(fd.get()));
}

class Iperf3Peer final : public Peer {
 public:
  explicit Iperf3Peer(std::optional<std::string> program) : program_(std::move(program)) {}
  std::string name() const override { return "iperf3"; }
  std::optional<std::string> unavailable() const override {
    if (program_) return std::nullopt;
    return "iperf3 is not installed (Debian: iperf3)";
  }

  std::string start_receiver(const RunSpec& spec) override {
    const std::string base = spec.work_dir + "/iperf3-server";
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::uint16_t port = free_tcp_port(spec.bind_host);
      server_ = std::make_unique<ChildProcess>(
          std::vector<std::string>{*program_, "-s", "-1", "-B", spec.bind_host, "-p", std::to_string(port), "--forceflush"},
          base + ".out", base + ".err");
      if (wait_for_line(*server_, server_->out_file(), "Server listening on", std::chrono::seconds(10)))
        return format_address(resolve_host(spec.bind_host, port, SOCK_STREAM, false).front());
      server_.reset();  // the port was taken meanwhile: try another
    }
    throw Error(ErrorKind::io, "iperf3 -s did not start: " + first_line(read_file(base + ".err")));
  }

  Measurement run_sender(const RunSpec& spec, const std::string& endpoint) override {
    const HostPort hp = split_host_port(endpoint);
    std::vector<std::string> argv{*program_, "-c", hp.host, "-p", hp.port, "-J"};
    if (spec.duration_seconds > 0) {
      argv.insert(argv.end(), {"-t", fmt::format("{}", spec.duration_seconds)});
    } else {
      argv.insert(argv.end(), {"-n", std::to_string(spec.cell.size)});
    }
    if (spec.series) argv.insert(argv.end(), {"-i", "0.5"});
    if (!spec.tcp_congestion.empty()) argv.insert(argv.end(), {"-C", spec.tcp_congestion});
    const std::string base = spec.work_dir + "/iperf3-client";
    const double t0 = unix_seconds();
    ChildProcess client(argv, base + ".out", base + ".err");
    // A capped run is interrupted at the cap (iperf3 then prints what it sent); any other run
    // gets the whole run timeout and is killed past it.
    const bool capped_run = spec.peer_cap_seconds > 0 && spec.duration_seconds <= 0;
    const auto st = capped_run
                         ? client.wait_or_stop(std::chrono::milliseconds(static_cast<long>(spec.peer_cap_seconds * 1000)),
                                               SIGINT, std::chrono::seconds(10))
                         : client.wait_or_stop(spec.timeout, SIGKILL);
    if (!capped_run && st.timed_out)
      return Measurement::failed(fmt::format("iperf3 ran past {} s", spec.timeout.count() / 1000));
    const bool capped = capped_run && st.timed_out;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(client.out_file()));
    } catch (const std::exception&) {
      return Measurement::failed("iperf3 -c (" + st.describe() + "): " + first_line(read_file(client.err_file())));
    }
    if (!capped && j.contains("error")) return Measurement::failed("iperf3: " + j["error"].get<std::string>());
    // Complete: the receiver's sum. Interrupted: only the sender's sum exists.
    const auto& end = j.at("end");
    const auto& sum = !capped && end.contains("sum_received") ? end["sum_received"] : end.at("sum_sent");
    Measurement m;
    m.status = Measurement::Status::ok;
    m.capped = capped;
    m.bytes = sum.value("bytes", std::uint64_t{0});
    m.seconds = sum.value("seconds", 0.0);
    m.wire_bytes = m.bytes;
    // Which congestion control the flow ran: what a share against it means depends on it.
    if (end.contains("sender_tcp_congestion") && end["sender_tcp_congestion"].is_string())
      m.note = "TCP " + end["sender_tcp_congestion"].get<std::string>();
    // iperf3's own figures: each side's CPU utilisation (user + system, % of one CPU) over the run.
    if (end.contains("cpu_utilization_percent")) {
      const auto& cpu = end["cpu_utilization_percent"];
      m.sender_cpu_s = cpu.value("host_total", -100.0) / 100 * m.seconds;
      m.receiver_cpu_s = cpu.value("remote_total", -100.0) / 100 * m.seconds;
    }
    if (spec.series && j.contains("intervals")) {
      double moved = 0;
      for (const auto& iv : j["intervals"]) {
        const auto& s = iv.at("sum");
        moved += s.value("bytes", 0.0);
        m.series.emplace_back(t0 + s.value("end", 0.0), moved);
      }
    }
    return m;
  }

  nlohmann::json finish_receiver(const RunSpec&) override {
    if (!server_) return {};
    // An interrupted client leaves the one-off server to notice the closed connection.
    server_->wait_or_stop(std::chrono::seconds(10), SIGKILL);
    server_.reset();
    return {};
  }

 private:
  std::optional<std::string> program_;
  std::unique_ptr<ChildProcess> server_;
};

}  // namespace

std::unique_ptr<Peer> make_iperf3_peer(const std::optional<std::string>& program) {
  return std::make_unique<Iperf3Peer>(program);
}

}  // namespace hymig::bench
