#include "security/epoch_keys.hpp"

namespace hymig {

EpochKeys::EpochKeys(const SessionSecrets& secrets, std::string purpose, Role sender, AeadCipher::Direction direction)
    : secrets_(secrets), purpose_(std::move(purpose)), sender_(sender), direction_(direction) {}

AeadCipher& EpochKeys::for_seq(std::uint64_t seq) {
  const std::uint64_t epoch = epoch_of(seq);
  for (auto& s : slots_)
    if (s.cipher && s.epoch == epoch) return *s.cipher;
  Slot& s = slots_[next_];
  next_ = (next_ + 1) % slots_.size();
  s.cipher.emplace(secrets_.traffic_key(purpose_ + "/" + std::to_string(epoch), sender_), direction_);
  s.epoch = epoch;
  return *s.cipher;
}

}  // namespace hymig
