#include "bench/suite/peer.hpp"

namespace hymig::bench {

std::unique_ptr<Peer> make_hymig_peer(const std::string& name, const std::string& bulk, const Tools& tools,
                                      std::vector<std::string> extra_args = {});
std::unique_ptr<Peer> make_stream_peer(const std::string& name, const std::optional<std::string>& program,
                                       const std::string& program_name);
std::unique_ptr<Peer> make_iperf3_peer(const std::optional<std::string>& program);
std::unique_ptr<Peer> make_memcpy_peer();

void Peer::merge(Measurement& m, const nlohmann::json& receiver) const {
  if (m.status == Measurement::Status::ok && receiver.contains("error")) {
    m.status = Measurement::Status::failed;
    m.note = receiver["error"].get<std::string>();
  }
  if (receiver.is_object() && receiver.contains("cpu_s") && receiver["cpu_s"].is_number())
    m.receiver_cpu_s = receiver["cpu_s"].get<double>();
}

const std::vector<std::string>& all_peer_names() {
  static const std::vector<std::string> names{"hymig",  "hymig-lanes2", "hymig-nozstd", "hymig-tcp", "hymig-rdma",
                                              "tcp-stream", "memcpy",  "iperf3",     "udt"};
  return names;
}

std::unique_ptr<Peer> make_peer(const std::string& name, const Tools& tools) {
  if (name == "hymig") return make_hymig_peer(name, "udp", tools);
  if (name == "hymig-lanes2") return make_hymig_peer(name, "udp", tools, {"--lanes", "2"});
  if (name == "hymig-nozstd") return make_hymig_peer(name, "udp", tools, {"--compress", "off"});
  if (name == "hymig-tcp") return make_hymig_peer(name, "tcp", tools);
  if (name == "hymig-rdma") return make_hymig_peer(name, "ud", tools);
  if (name == "tcp-stream") return make_stream_peer(name, tools.tcpstream, "hymig-tcpstream");
  if (name == "udt") return make_stream_peer(name, tools.udtstream, "hymig-udtstream");
  if (name == "iperf3") return make_iperf3_peer(tools.iperf3);
  if (name == "memcpy") return make_memcpy_peer();
  return nullptr;
}

}  // namespace hymig::bench
