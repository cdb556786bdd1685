// Step 1 of a session: exchange hello (version, capabilities, nonce) and, when a shared secret is
// configured on either side, prove knowledge of it both ways with HMAC-SHA-512/256 over the two
// nonces. Also the shared "wait for message X" helper every phase uses.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "transport/reliable_channel.hpp"
#include "transport/wire.hpp"

namespace hymig {

struct PeerHello {
  Hello hello;
  nlohmann::json caps;
};

// `secret` is the raw content of the secret file (any length; hashed into a key).
PeerHello handshake(ReliableChannel& ch, const std::string& role, const nlohmann::json& local_caps,
                    const std::optional<std::string>& secret, std::chrono::milliseconds timeout);

// Waits for a message of type `want`. An abort from the peer becomes Error{refused} with its
// reason; silence past `timeout` Error{timeout}; any other type Error{protocol}. Progress reports
// arriving meanwhile are skipped.
Message expect(ReliableChannel& ch, MsgType want, std::chrono::milliseconds timeout);

// Sends an abort with `reason`, ignoring any failure (the link may be what failed).
void send_abort_quietly(ReliableChannel& ch, const std::string& reason) noexcept;

// A message the caller has no use for at this point: an abort becomes Error{refused} ("<peer>
// aborted: <reason>"); anything else has its payload discarded and becomes Error{protocol} with
// `protocol_error`.
[[noreturn]] void reject_message(ReliableChannel& ch, const Message& m, const std::string& peer,
                                 const std::string& protocol_error);

}  // namespace hymig
