#include "transport/handshake.hpp"

#include <sodium.h>

#include <cstring>

#include "transport/error.hpp"

namespace hymig {
namespace {

using Key = std::array<unsigned char, crypto_auth_KEYBYTES>;

Key derive_key(const std::string& secret) {
  Key key;
  crypto_generichash(key.data(), key.size(), reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                     reinterpret_cast<const unsigned char*>("hymig-key-v1"), 12);
  return key;
}

// The MAC a side of `role` sends: over the role and both nonces in source, destination order, so a
// recorded answer cannot be replayed to a fresh challenge nor reflected back.
std::array<unsigned char, crypto_auth_BYTES> role_mac(const Key& key, const std::string& role,
                                                      const std::array<std::uint8_t, 32>& source_nonce,
                                                      const std::array<std::uint8_t, 32>& dest_nonce) {
  std::vector<unsigned char> msg(role.begin(), role.end());
  msg.insert(msg.end(), source_nonce.begin(), source_nonce.end());
  msg.insert(msg.end(), dest_nonce.begin(), dest_nonce.end());
  std::array<unsigned char, crypto_auth_BYTES> mac;
  crypto_auth(mac.data(), msg.data(), msg.size(), key.data());
  return mac;
}

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

PeerHello handshake(ReliableChannel& ch, const std::string& role, const nlohmann::json& local_caps,
                    const std::optional<std::string>& secret, std::chrono::milliseconds timeout) {
  if (sodium_init() < 0) throw Error(ErrorKind::io, "libsodium failed to initialise");
  Hello mine;
  mine.role = role;
  mine.auth = secret.has_value();
  mine.software = "hymig 0.1.0";
  randombytes_buf(mine.nonce.data(), mine.nonce.size());
  ch.send(wire(MsgType::hello), encode_hello(mine, local_caps));

  PeerHello peer;
  const auto m = expect(ch, MsgType::hello, timeout);
  peer.hello = decode_hello(m.body, peer.caps);
  if (peer.hello.role == role) throw Error(ErrorKind::protocol, "the peer also says it is the " + role);
  if (peer.hello.version != kProtocolVersion) {
    const std::string why = "protocol version mismatch: the peer speaks " + std::to_string(peer.hello.version) +
                            ", this side " + std::to_string(kProtocolVersion) + "; install the same hymig on both";
    send_abort_quietly(ch, why);
    throw Error(ErrorKind::refused, why);
  }

  if (!secret && !peer.hello.auth) return peer;
  if (!secret) throw Error(ErrorKind::refused, "the peer requires authentication: pass the shared --secret-file");
  if (!peer.hello.auth) {
    send_abort_quietly(ch, "this side requires authentication: pass the shared --secret-file");
    throw Error(ErrorKind::refused, "this side has a --secret-file but the peer has none");
  }
  const Key key = derive_key(*secret);
  const bool is_source = role == "source";
  const auto& src_nonce = is_source ? mine.nonce : peer.hello.nonce;
  const auto& dst_nonce = is_source ? peer.hello.nonce : mine.nonce;
  const auto my_mac = role_mac(key, role, src_nonce, dst_nonce);
  ch.send(wire(MsgType::auth), std::as_bytes(std::span(my_mac)));
  const auto a = expect(ch, MsgType::auth, timeout);
  const auto want = role_mac(key, peer.hello.role, src_nonce, dst_nonce);
  if (a.body.size() != want.size() || sodium_memcmp(a.body.data(), want.data(), want.size()) != 0) {
    send_abort_quietly(ch, "authentication failed: the secrets differ");
    throw Error(ErrorKind::refused, "authentication failed: the peer's secret differs from ours");
  }
  return peer;
}

void reject_message(ReliableChannel& ch, const Message& m, const std::string& peer,
                    const std::string& protocol_error) {
  if (static_cast<MsgType>(m.type) == MsgType::abort)
    throw Error(ErrorKind::refused, peer + " aborted: " + decode_abort(m.body));
  if (m.payload_bytes) ch.discard_payload();
  throw Error(ErrorKind::protocol, protocol_error);
}

}  // namespace hymig
