// Step 1 of a session: authenticate the peer by the cluster key (TLS 1.3 PSK handshake on the
// connection, security/tls_psk_handshake.hpp), seal the connection with the session's keys
// (protocol/sealed_channel.hpp), then exchange hello (version, role, capabilities) inside it:
// nothing about this host reaches a peer that has not proved the key. Also the shared "wait for
// message X" helpers every phase uses.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "protocol/wire.hpp"
#include "security/cluster_key.hpp"
#include "security/session_secrets.hpp"
#include "transport/reliable_channel.hpp"

namespace hymig {

struct PeerHello {
  Hello hello;
  nlohmann::json caps;
};

struct SecureSession {
  std::unique_ptr<ReliableChannel> channel;  // the connection, sealed
  SessionSecrets secrets;
  PeerHello peer;                            // filled by exchange_hello
};

// Authenticates the peer over `connection` (a raw TCP channel whose socket is `socket`) and seals
// the connection, by `deadline`. Throws Error{refused} for a peer that does not prove the key,
// Error{timeout} past the deadline. `detail` receives the reason in full for the local log (the
// message thrown stays generic). Then exchange_hello() on the sealed channel.
SecureSession open_secure_session(std::unique_ptr<ReliableChannel> connection, int socket, Role role,
                                  const ClusterKey& key, std::chrono::steady_clock::time_point deadline,
                                  std::string* detail = nullptr);

// `raw` sealed with the session's keys for `purpose` ("control", "rc"), as seen from `me`.
std::unique_ptr<ReliableChannel> seal_channel(std::unique_ptr<ReliableChannel> raw, const SessionSecrets& secrets,
                                              std::string_view purpose, Role me);

// Exchanges hello (version, role, capabilities) over the sealed channel: Error{refused} for another
// protocol version, Error{protocol} for a malformed hello (nested too deep, too large, wrong role).
PeerHello exchange_hello(ReliableChannel& ch, Role role, const nlohmann::json& local_caps, std::chrono::milliseconds timeout);

// The peer ended the session with an abort (its reason in what()): nothing to answer.
class PeerAborted : public Error {
 public:
  explicit PeerAborted(const std::string& what) : Error(ErrorKind::refused, what) {}
};

// Waits for a message of type `want`. An abort from the peer becomes Error{refused} with its
// reason; silence past `timeout` Error{timeout}; any other type Error{protocol}. Progress reports
// arriving meanwhile are skipped.
Message expect(ReliableChannel& ch, MsgType want, std::chrono::milliseconds timeout);

// Sends an abort with `reason`, ignoring any failure (the link may be what failed).
void send_abort_quietly(ReliableChannel& ch, const std::string& reason) noexcept;

// A message the caller has no use for at this point: an abort becomes PeerAborted ("<peer>
// aborted: <reason>"); anything else has its payload discarded and becomes Error{protocol} with
// `protocol_error`.
[[noreturn]] void reject_message(ReliableChannel& ch, const Message& m, const std::string& peer,
                                 const std::string& protocol_error);

}  // namespace hymig
