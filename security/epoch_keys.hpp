// Keys for a long run of numbered records (a lane's datagrams): a fresh key every 2^24 records
// (an epoch), derived on first use from the session's secret under "PURPOSE/EPOCH". At 64 KiB a
// datagram that is 1 TiB per key, inside AES-GCM's usage limits with TLS 1.3's margin (RFC 8446
// §5.5); a 1.4 KiB datagram stream changes keys every 23 GB. The few most recent epochs' ciphers
// are kept, so reordering across an epoch boundary costs nothing.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "security/aead.hpp"
#include "security/session_secrets.hpp"

namespace hymig {

class EpochKeys {
 public:
  static constexpr unsigned kEpochBits = 24;
  static std::uint64_t epoch_of(std::uint64_t seq) { return seq >> kEpochBits; }

  EpochKeys(const SessionSecrets& secrets, std::string purpose, Role sender, AeadCipher::Direction direction);

  // The cipher for record `seq`: derived now if its epoch is not among the kept ones.
  AeadCipher& for_seq(std::uint64_t seq);

 private:
  struct Slot {
    std::uint64_t epoch = 0;
    std::optional<AeadCipher> cipher;
  };
  SessionSecrets secrets_;
  std::string purpose_;
  Role sender_;
  AeadCipher::Direction direction_;
  std::array<Slot, 3> slots_;
  std::size_t next_ = 0;  // the slot to reuse next
};

}  // namespace hymig
