// hymig probe: this host's links, its capabilities, and the plan the policy would pick (for a peer
// with the same capabilities, or for the path to --peer).
#include <iostream>

#include <fmt/format.h>

#include "cli/command.hpp"
#include "core/units.hpp"
#include "policy/capabilities.hpp"
#include "policy/link_probe.hpp"
#include "policy/plan.hpp"

namespace hymig::cli {

int run_probe(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("peer", po::value<std::string>(), "plan for the path to this host (no traffic is sent)")(
      "json", po::bool_switch(), "print JSON instead of text")(
      "bulk", po::value<std::string>()->default_value("auto"), "as for migrate: auto, udp, ud or tcp")(
      "reliable", po::value<std::string>()->default_value("auto"), "as for migrate: auto, tcp or rc")(
      "rate", po::value<std::string>()->default_value("auto"), "as for migrate");
  po::variables_map vm;
  if (!parse_options("probe", "[--peer HOST] [--json]",
                     "The plan assumes the peer has this host's capabilities; `hymig migrate` decides with the\n"
                     "peer's real ones, exchanged in its hello, and puts the plan in its report.\n",
                     desc, args, vm))
    return kExitOk;
  std::optional<std::string> peer;
  if (vm.count("peer")) peer = vm["peer"].as<std::string>();
  Preferences prefs;
  if (vm["bulk"].as<std::string>() != "auto") prefs.bulk = parse_bulk_transport(vm["bulk"].as<std::string>());
  if (vm["reliable"].as<std::string>() != "auto")
    prefs.reliable = parse_reliable_transport(vm["reliable"].as<std::string>());
  if (vm["rate"].as<std::string>() != "auto") prefs.rate_bytes_per_s = parse_rate(vm["rate"].as<std::string>(), "--rate");

  const auto links = probe_links();
  const Capabilities caps = probe_capabilities(peer);
  const Plan plan = choose_plan(caps, caps, prefs);
  std::optional<PathInfo> path;
  if (peer) path = probe_path(*peer);

  if (vm["json"].as<bool>()) {
    nlohmann::json j;
    j["links"] = nlohmann::json::array();
    for (const auto& l : links)
      j["links"].push_back({{"name", l.name}, {"mtu", l.mtu}, {"up", l.up}, {"loopback", l.loopback},
                            {"speed_mbps", l.speed_mbps ? nlohmann::json(*l.speed_mbps) : nlohmann::json()},
                            {"addresses", l.addresses}});
    j["capabilities"] = to_json(caps);
    if (path) j["path"] = {{"peer", *peer}, {"local_address", path->local_address}, {"interface", path->interface}, {"mtu", path->mtu}};
    j["plan"] = to_json(plan);
    std::cout << j.dump(2) << std::endl;
    return kExitOk;
  }
  std::cout << "links\n";
  for (const auto& l : links)
    std::cout << fmt::format("  {:<12} mtu {:<6} {:<5} speed {:<10} {}\n", l.name, l.mtu, l.up ? "up" : "down",
                             l.speed_mbps ? std::to_string(*l.speed_mbps) + " Mb/s" : "unknown",
                             fmt::join(l.addresses, " "));
  if (path)
    std::cout << fmt::format("path to {}: via {} from {}, mtu {}\n", *peer, path->interface.empty() ? "?" : path->interface,
                             path->local_address, path->mtu);
  std::cout << fmt::format("capabilities: udp {} (gso {}, gro {}), tcp {}, rdma ud {}, rc {}\n", caps.udp, caps.udp_gso,
                           caps.udp_gro, caps.tcp, caps.rdma_ud, caps.rdma_rc);
  std::cout << fmt::format("plan: bulk {}, reliable {}, datagrams of {} bytes, start rate {}/s\n", to_string(plan.bulk),
                           to_string(plan.reliable), plan.datagram_bytes, format_bytes(plan.initial_rate_bytes_per_s));
  for (const auto& r : plan.reasons) std::cout << "  - " << r << "\n";
  return kExitOk;
}

}  // namespace hymig::cli
