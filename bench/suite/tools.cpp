// Where hymig-bench finds the programs it runs: beside itself (an install), in the build tree
// (bench/suite -> cli, bench), or on PATH.
#include <unistd.h>

#include <filesystem>

#include "bench/suite/child_process.hpp"
#include "bench/suite/peer.hpp"

namespace hymig::bench {
namespace {

std::string self_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : p.parent_path().string();
}

}  // namespace

Tools find_tools(const std::string& hymig_override) {
  const std::string d = self_dir();
  Tools t;
  t.hymig = hymig_override.empty() ? find_program({d + "/hymig", d + "/../../cli/hymig", d + "/../cli/hymig", "hymig"})
                                   : find_program({hymig_override});
  t.tcpstream = find_program({d + "/hymig-tcpstream", d + "/../hymig-tcpstream", "hymig-tcpstream"});
  t.udtstream = find_program({d + "/hymig-udtstream", d + "/../hymig-udtstream", "hymig-udtstream"});
  t.iperf3 = find_program({"iperf3"});
  return t;
}

nlohmann::json Tools::to_json() const {
  auto v = [](const std::optional<std::string>& p) { return p ? nlohmann::json(*p) : nlohmann::json(nullptr); };
  return {{"hymig", v(hymig)}, {"hymig-tcpstream", v(tcpstream)}, {"hymig-udtstream", v(udtstream)}, {"iperf3", v(iperf3)}};
}

}  // namespace hymig::bench
