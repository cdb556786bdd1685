// hymig status: what a `hymig serve` daemon is doing (migrations coming in, with phase and
// progress), what it can still take, and its last results. Asked over an authenticated session.
#include <iostream>

#include <fmt/format.h>

#include "cli/command.hpp"
#include "cli/daemon_client.hpp"
#include "cli/peer_json.hpp"
#include "core/error.hpp"
#include "core/units.hpp"
#include "policy/host_capacity.hpp"
#include "protocol/wire.hpp"

namespace hymig::cli {
namespace {

// The answer comes from a daemon that proved the key, yet is printed only as far as it is sane
// (cli/peer_json.hpp): a field of the wrong type prints as "?".
std::string text(const nlohmann::json& j, const char* key) {
  const std::string t = json_text(j, key, 200);
  return t.empty() ? "?" : t;
}
double number(const nlohmann::json& j, const char* key) { return json_number(j, key); }
std::string duration(double s) {
  if (s < 120) return fmt::format("{:.1f} s", s);
  if (s < 7200) return fmt::format("{:.0f} min", s / 60);
  return fmt::format("{:.1f} h", s / 3600);
}

void print_status(const std::string& address, const nlohmann::json& st, std::size_t last) {
  std::cout << "hymig serve at " << address << " (" << text(st, "software") << ", up " << duration(number(st, "uptime_s"))
            << ")\n";
  try {
    const HostCapacity c = capacity_from_json(st.at("capacity"));
    std::cout << "memory: " << format_bytes(double(c.memory_available)) << " available of "
              << format_bytes(double(c.memory_total));
    if (c.ram_files_free) std::cout << "; RAM files: " << format_bytes(double(*c.ram_files_free)) << " free";
    for (const auto& p : c.hugepages)
      if (p.total) std::cout << "; huge pages " << format_bytes(double(p.page_bytes)) << ": " << p.free << " free of " << p.total;
    std::cout << "\nincoming: " << c.incoming << " of " << c.max_incoming << " (--max-incoming)"
              << (c.libvirt ? "; takes libvirt domains" : "") << "\n";
  } catch (const std::exception& e) {
    std::cout << "capacity: unreadable (" << e.what() << ")\n";
  }
  if (st.contains("store_free")) std::cout << "store: " << format_bytes(number(st, "store_free")) << " free\n";
  const auto in = st.find("incoming");
  if (in != st.end() && in->is_array() && !in->empty()) {
    std::cout << fmt::format("\n{:<16} {:<22} {:<24} {:<12} {:>5} {:>21} {:>9}\n", "SESSION", "PEER", "IMAGE", "PHASE", "ROUND",
                             "RECEIVED / SIZE", "ELAPSED");
    for (const auto& i : *in)
      std::cout << fmt::format("{:<16} {:<22} {:<24} {:<12} {:>5} {:>21} {:>9}\n", text(i, "session"), text(i, "peer"),
                               text(i, "image_kind") + ":" + text(i, "image_name"), text(i, "phase"),
                               static_cast<long long>(number(i, "round")),
                               format_bytes(number(i, "bytes_received")) + " / " + format_bytes(number(i, "image_bytes")),
                               duration(number(i, "seconds")));
  }
  // Migrations out: the drain of its own node this daemon runs (hymig drain --node).
  if (const auto d = st.find("drain"); d != st.end() && d->is_object() && text(*d, "state") != "none") {
    const std::string state = text(*d, "state");
    std::cout << "\ndrain of this node: " << state;
    if (state == "done") std::cout << ", exit " << static_cast<long long>(number(*d, "exit_code"));
    std::cout << "\n";
    const nlohmann::json rows = d->contains("report") && (*d)["report"].is_object() && (*d)["report"].contains("domains")
                                    ? (*d)["report"]["domains"]
                                    : d->value("live", nlohmann::json::array());
    if (rows.is_array())
      for (const auto& r : rows)
        if (r.is_object())
          std::cout << fmt::format("  {:<24} {:<22} {:<12} {}\n", text(r, "name"), r.contains("target") ? text(r, "target") : "-",
                                   text(r, "outcome"), r.contains("why") ? text(r, "why") : "");
  }
  const auto recent = st.find("recent");
  if (recent != st.end() && recent->is_array() && !recent->empty() && last > 0) {
    std::cout << fmt::format("\nlast results:\n{:<16} {:<22} {:<24} {:<10} {:>9}  {}\n", "SESSION", "PEER", "IMAGE", "OUTCOME",
                             "TIME", "ERROR");
    std::size_t n = 0;
    for (const auto& r : *recent) {
      if (n++ == last) break;
      std::cout << fmt::format("{:<16} {:<22} {:<24} {:<10} {:>9}  {}\n", text(r, "session"), text(r, "peer"),
                               text(r, "image_kind") + ":" + text(r, "image_name"), text(r, "outcome"),
                               duration(number(r, "seconds")), r.contains("error") ? text(r, "error") : "");
    }
  }
}

}  // namespace

int run_status(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()
      ("daemon", po::value<std::string>()->default_value("127.0.0.1:7470"), "HOST:PORT of the `hymig serve` to ask (also the first argument)")
      ("json", po::bool_switch(), "print the daemon's answer as JSON")
      ("last", po::value<unsigned>()->default_value(10), "how many recent results to list (the daemon keeps 32)")
      ("timeout", po::value<double>()->default_value(5.0), "seconds to wait for the daemon");
  add_key_options(desc);
  std::vector<std::string> rest = args;
  if (!rest.empty() && !rest.front().empty() && rest.front()[0] != '-') rest.insert(rest.begin(), "--daemon");
  po::variables_map vm;
  if (!parse_options("status", "[HOST:PORT] [--json] [--last N] [--key-file FILE]",
                     "Asks a `hymig serve` daemon (default the local one, 127.0.0.1:7470) what it receives now\n"
                     "(each migration's phase, round, bytes received and time), what it can still take (memory,\n"
                     "huge pages, the space for RAM files and the store, free --max-incoming slots) and its last\n"
                     "results. The session is authenticated by the cluster key like a migration's.\n"
                     "Exit codes: 0 answered, 1 the daemon could not be asked, 2 usage error.\n",
                     desc, rest, vm))
    return kExitOk;
  const auto timeout = timeout_option(vm, "timeout");
  const std::string address = vm["daemon"].as<std::string>();
  const ClusterKey key = load_key(vm);
  const nlohmann::json st = query_daemon(address, key, "status", nlohmann::json::object(), timeout);
  if (vm["json"].as<bool>()) std::cout << st.dump(2) << std::endl;
  else print_status(address, st, vm["last"].as<unsigned>());
  return kExitOk;
}

}  // namespace hymig::cli
