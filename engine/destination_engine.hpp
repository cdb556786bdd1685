// The destination side of a migration, after the handshake: take the notify, prepare the target,
// receive rounds (datagrams or pages), report loss, take the final delta, verify, commit. On any
// failure the target is discarded and nothing remains under the final name.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/session_live.hpp"
#include "images/image.hpp"
#include "protocol/wire.hpp"
#include "security/session_secrets.hpp"
#include "transport/datagram_channel.hpp"
#include "transport/reliable_channel.hpp"

namespace hymig {

using TargetFactory = std::function<std::unique_ptr<TargetImage>(const Notify&)>;
using ReceiverDatagramFactory = std::function<std::unique_ptr<DatagramChannel>(const Notify&)>;

// When notify asks for "rc": the listener the session moves to (its endpoint goes in ready).
using ReliableAcceptorFactory = std::function<std::unique_ptr<ReliableAcceptor>(const Notify&)>;

struct DestinationOptions {
  // The session's keys (open_secure_session): required; `rel` is already sealed with them.
  const SessionSecrets* secrets = nullptr;
  std::chrono::milliseconds peer_timeout{10000};
  ReliableAcceptorFactory make_reliable;  // unset: a notify asking for another transport is refused
  // The notify, when the caller already received it (the daemon reads the first message itself:
  // it may be a query); unset: the engine waits for it.
  std::optional<Notify> notify;
  SessionLive* live = nullptr;  // the phase and progress, for the daemon's status; optional
  // Populate the target ahead of round 0's stream (engine/target_prefaulter.hpp).
  bool prefault = true;
};

struct DestinationReport {
  bool committed = false;
  std::string error;
  std::uint64_t session = 0;
  std::string image_name, image_kind, stored_at;
  std::uint64_t image_bytes = 0;
  std::uint64_t datagrams = 0, invalid_datagrams = 0, bad_mac = 0, replayed = 0, future_round = 0, bad_hash = 0, stale = 0,
                bad_compressed = 0;
  std::uint64_t broken_record = 0;       // chunks of page records given up (a sibling lost), or their late copies
  std::uint64_t device_state_bytes = 0;  // a VM's device state, loaded before the commit
  std::uint64_t prefaulted_bytes = 0;    // of the target, populated ahead of round 0's stream
  std::uint64_t foreign_connections = 0; // connections to the moved channel's listener that were not the source
  std::string final_delta = "send";      // "write": the source wrote the final delta into the exposed image
  std::string final_delta_note;          // why the image was not exposed when the source asked
  std::string digest;
};

DestinationReport run_destination(ReliableChannel& rel, const ReceiverDatagramFactory& make_datagram,
                                  const TargetFactory& make_target, const DestinationOptions& opts);

}  // namespace hymig
