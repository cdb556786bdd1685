// hymig itself as a peer: `hymig serve --once` on the receiver rank, `hymig migrate` of a synthetic
// image on the sender rank, with one of its bulk transports (UDP+TCP, --bulk tcp, RDMA UD+RC).
#include <csignal>

#include <fmt/format.h>

#include <sstream>
#include "bench/suite/child_process.hpp"
#include "bench/suite/peer.hpp"
#include "core/error.hpp"

namespace hymig::bench {
namespace {

class HymigPeer final : public Peer {
 public:
  HymigPeer(std::string name, std::string bulk, const Tools& tools, std::vector<std::string> extra)
      : name_(std::move(name)), bulk_(std::move(bulk)), tools_(tools), extra_(std::move(extra)) {}

  std::string name() const override { return name_; }
  bool handles_dirty() const override { return true; }

  std::optional<std::string> unavailable() const override {
    if (!tools_.hymig) return "the hymig binary was not found (build it, or pass --hymig PATH)";
    if (bulk_ != "ud") return std::nullopt;
    // RDMA runs only where hymig's own probe finds a usable device.
    const auto r = run_command({*tools_.hymig, "probe", "--json"}, "", std::chrono::seconds(20));
    try {
      const auto caps = nlohmann::json::parse(r.out).at("capabilities");
      if (!caps.value("rdma_ud", false) || !caps.value("rdma_rc", false))
        return "no usable RDMA device on this host (hymig probe: rdma_ud/rdma_rc false)";
    } catch (const std::exception&) {
      return "hymig probe failed: " + last_plain_line(r.err);
    }
    return std::nullopt;
  }

  std::string start_receiver(const RunSpec& spec) override {
    const std::string base = spec.work_dir + "/" + name_ + "-serve";
    serve_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{*tools_.hymig, "serve", "--listen", spec.bind_host + ":0", "--once", "--timeout",
                                 fmt::format("{}", timeout_seconds(spec)), "--store", spec.work_dir + "/store",
                                 "--allow-synthetic", "--key-file", spec.key_file},
        base + ".out", base + ".err");
    auto ep = wait_for_line(*serve_, serve_->err_file(), "listening on ", std::chrono::seconds(20));
    if (!ep) throw Error(ErrorKind::io, "hymig serve did not start: " + last_plain_line(read_file(serve_->err_file())));
    return *ep;
  }

  Measurement run_sender(const RunSpec& spec, const std::string& endpoint) override {
    const auto& c = spec.cell;
    // zero-fraction=0: hymig moves as many bytes as the baselines (no zero-page shortcut).
    std::string image = fmt::format("synthetic:size={},zero-fraction=0", c.size);
    if (spec.compressible > 0) image += fmt::format(",compressible={}", spec.compressible);
    if (c.dirty_rate) image += fmt::format(",dirty-rate={},working-set={}", c.dirty_rate, std::max<std::uint64_t>(c.size / 4, 4096));
    std::vector<std::string> argv{*tools_.hymig, "migrate", "--image", image, "--to", endpoint, "--report", "json",
                                  "--progress", spec.series ? "json" : "off", "--timeout",
                                  fmt::format("{}", timeout_seconds(spec)), "--key-file", spec.key_file};
    if (bulk_ != "udp") {
      argv.push_back("--bulk");
      argv.push_back(bulk_);
    }
    // The rate memory of the run's own (a benchmark never reads or changes the user's).
    argv.insert(argv.end(), {"--rate-memory", spec.work_dir + "/peer-rates.json"});
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    std::istringstream extra(spec.extra_hymig_args);
    for (std::string a; extra >> a;) argv.push_back(a);
    const std::string base = spec.work_dir + "/" + name_ + "-migrate";
    ChildProcess migrate(argv, base + ".out", base + ".err");
    const auto st = migrate.wait_or_stop(spec.timeout);
    if (st.timed_out) return Measurement::failed(fmt::format("hymig migrate ran past {} s", spec.timeout.count() / 1000));
    nlohmann::json rep;
    try {
      rep = nlohmann::json::parse(read_file(migrate.out_file()));
    } catch (const std::exception&) {
      return Measurement::failed("hymig migrate (" + st.describe() + "): " + last_plain_line(read_file(migrate.err_file())));
    }
    Measurement m;
    m.verified = rep.value("verified", false);
    m.status = rep.value("committed", false) && m.verified ? Measurement::Status::ok : Measurement::Status::failed;
    m.note = m.status == Measurement::Status::ok ? "" : "not committed: " + rep.value("error", std::string("?"));
    m.seconds = rep.value("total_ms", 0.0) / 1000;
    m.bytes = c.size;
    m.downtime_ms = rep.value("downtime_ms", -1.0);
    m.rounds = rep.value("rounds", 0u);
    m.wire_bytes = rep["bulk"].value("bytes", std::uint64_t{0}) + rep["reliable"].value("bytes", std::uint64_t{0});
    if (rep.contains("cpu"))
      m.sender_cpu_s = rep["cpu"].value("user_s", 0.0) + rep["cpu"].value("system_s", 0.0);
    if (spec.series) {
      std::istringstream err(read_file(migrate.err_file()));
      for (std::string line; std::getline(err, line);) {
        if (line.rfind("{\"progress\"", 0) != 0) continue;
        try {
          const auto p = nlohmann::json::parse(line).at("progress");
          m.series.emplace_back(p.at("t").get<double>(), p.at("bytes_moved").get<double>());
        } catch (const std::exception&) {
        }
      }
    }
    return m;
  }

  nlohmann::json finish_receiver(const RunSpec& spec) override {
    if (!serve_) return {};
    const auto st = serve_->wait_or_stop(std::chrono::seconds(15));
    nlohmann::json j = nlohmann::json::object();
    if (!st.ok()) j["error"] = "hymig serve " + st.describe() + ": " + last_plain_line(read_file(serve_->err_file()));
    else j["cpu_s"] = st.cpu_seconds;
    serve_.reset();
    return j;
  }

 private:
  static long timeout_seconds(const RunSpec& spec) { return std::max<long>(10, spec.timeout.count() / 4000); }

  std::string name_, bulk_;
  const Tools& tools_;
  std::vector<std::string> extra_;
  std::unique_ptr<ChildProcess> serve_;
};

}  // namespace

std::unique_ptr<Peer> make_hymig_peer(const std::string& name, const std::string& bulk, const Tools& tools,
                                      std::vector<std::string> extra_args) {
  return std::make_unique<HymigPeer>(name, bulk, tools, std::move(extra_args));
}

}  // namespace hymig::bench
