#include "protocol/handshake.hpp"

#include "core/error.hpp"
#include "protocol/sealed_channel.hpp"
#include "protocol/stop_point.hpp"
#include "security/tls_psk_handshake.hpp"

namespace hymig {
namespace {

// A hello with its capabilities is a few hundred bytes; nothing larger is read before it.
constexpr std::size_t kMaxHelloBytes = 64 * 1024;

const char* peer_name(Role me) { return me == Role::source ? "the destination" : "the source"; }

}  // namespace

Message expect(ReliableChannel& ch, MsgType want, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto m = ch.receive(std::max(left, std::chrono::milliseconds(0)));
    if (!m) throw Error(ErrorKind::timeout, std::string("no ") + to_string(want) + " from the peer within " +
                                                std::to_string(timeout.count() / 1000.0).substr(0, 4) + " s");
    const auto type = static_cast<MsgType>(m->type);
    if (type == want) return *m;
    if (type == MsgType::progress) continue;
    reject_message(ch, *m, "the peer", std::string("expected ") + to_string(want) + ", got message type " +
                                           std::to_string(m->type) + " (" + to_string(type) + ")");
  }
}

void send_abort_quietly(ReliableChannel& ch, const std::string& reason) noexcept {
  try {
    ch.send(wire(MsgType::abort), encode_abort(reason));
  } catch (...) {
  }
}

std::unique_ptr<ReliableChannel> seal_channel(std::unique_ptr<ReliableChannel> raw, const SessionSecrets& secrets,
                                              std::string_view purpose, Role me) {
  auto ch = std::make_unique<SealedChannel>(std::move(raw), secrets.traffic_key(purpose, me),
                                            secrets.traffic_key(purpose, other(me)), peer_name(me));
  // Only the source writes pages; both ends use its key.
  ch->set_write_key(secrets.traffic_key(std::string(purpose) + " write", Role::source));
  return ch;
}

PeerHello exchange_hello(ReliableChannel& ch, Role role, const nlohmann::json& local_caps, std::chrono::milliseconds timeout) {
  Hello mine;
  mine.role = to_string(role);
  mine.software = "hymig " HYMIG_VERSION;
  ch.set_limits(kMaxHelloBytes, 0);
  ch.send(wire(MsgType::hello), encode_hello(mine, local_caps));
  PeerHello peer;
  const auto m = expect(ch, MsgType::hello, timeout);
  peer.hello = decode_hello(m.body, peer.caps);
  if (peer.hello.role == mine.role) throw Error(ErrorKind::protocol, "the peer also says it is the " + mine.role);
  if (peer.hello.version != kProtocolVersion) {
    const std::string why = "protocol version mismatch: the peer speaks " + std::to_string(peer.hello.version) +
                            ", this side " + std::to_string(kProtocolVersion) + "; install the same hymig on both";
    send_abort_quietly(ch, why);
    throw Error(ErrorKind::refused, why);
  }
  return peer;
}

SecureSession open_secure_session(std::unique_ptr<ReliableChannel> connection, int socket, Role role,
                                  const ClusterKey& key, std::chrono::steady_clock::time_point deadline,
                                  std::string* detail) {
  stop_point(role, "connect");
  SecureSession s;
  s.secrets = tls_psk_handshake(socket, role, key, deadline, detail);
  s.channel = seal_channel(std::move(connection), s.secrets, "control", role);
  return s;
}

void reject_message(ReliableChannel& ch, const Message& m, const std::string& peer,
                    const std::string& protocol_error) {
  if (static_cast<MsgType>(m.type) == MsgType::abort)
    throw PeerAborted(peer + " aborted: " + decode_abort(m.body));
  if (m.payload_bytes) ch.discard_payload();
  throw Error(ErrorKind::protocol, protocol_error);
}

}  // namespace hymig
