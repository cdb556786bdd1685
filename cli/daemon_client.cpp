#include "cli/daemon_client.hpp"

#include "protocol/handshake.hpp"
#include "protocol/wire.hpp"
#include "tcp/tcp_connect.hpp"
#include "tcp/tcp_reliable_channel.hpp"

namespace hymig::cli {

nlohmann::json query_daemon(const std::string& address, const ClusterKey& key, const std::string& what,
                            const nlohmann::json& args, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto tcp = connect_tcp(address, timeout, std::string());
  tcp->set_io_timeout(timeout);
  const int socket = tcp->socket_fd();
  SecureSession session = open_secure_session(std::move(tcp), socket, Role::source, key, deadline);
  // A query carries no capabilities: it moves nothing.
  session.peer = exchange_hello(*session.channel, Role::source, nlohmann::json::object(), timeout);
  session.channel->send(wire(MsgType::query), encode_query(what, args));
  return decode_answer(expect(*session.channel, MsgType::answer, timeout).body);
}

}  // namespace hymig::cli
