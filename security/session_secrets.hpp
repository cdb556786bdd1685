// What an authenticated handshake leaves behind: one secret, exported from TLS 1.3 (RFC 8446
// §7.5, bound to both sides' randoms, the key exchange and the whole transcript), from which every
// key of the session is derived with HKDF-Expand (RFC 5869, SHA-256) under a label naming its use
// and direction. No key serves two purposes; a receiver's key is its peer's sender key.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "security/aead.hpp"

namespace hymig {

enum class Role { source, destination };
const char* to_string(Role r);
inline Role other(Role r) { return r == Role::source ? Role::destination : Role::source; }

struct SessionSecrets {
  std::array<std::uint8_t, 32> exporter{};

  // A traffic key for records that `sender` protects, for `purpose` ("control", "rc",
  // "datagram/3", "write", ...). Both ends derive the same key for the same (purpose, sender).
  TrafficKey traffic_key(std::string_view purpose, Role sender) const;
  // Raw key material for other uses ("digest").
  void derive(std::string_view purpose, std::span<std::uint8_t> out) const;

  // Fresh random secrets: for tests and benchmarks of the engine without a handshake.
  static SessionSecrets random_for_testing();
};

}  // namespace hymig
