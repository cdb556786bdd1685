// Record protection: AES-128-GCM (OpenSSL, AES-NI + PCLMULQDQ) with the nonce built as TLS 1.3
// builds it (RFC 8446 §5.3): the key's 12-byte IV XOR the record's 64-bit sequence number. Every
// sequence number is used once per key: the callers number their records (frames, datagrams).
//
// Streaming, so a record can be sealed from or opened into scattered memory (pages of an image)
// without a staging copy: begin(), then any number of crypt() calls over consecutive pieces (in
// place allowed), then finish. A MAC-only mode authenticates the pieces as associated data and
// leaves them in clear (`--encrypt off`, which exists to measure what encryption costs).
// A context is made once per key; nothing is allocated per record.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace hymig {

inline constexpr std::size_t kAeadKeyBytes = 16;
inline constexpr std::size_t kAeadIvBytes = 12;
inline constexpr std::size_t kAeadTagBytes = 16;

struct TrafficKey {
  std::array<std::uint8_t, kAeadKeyBytes> key{};
  std::array<std::uint8_t, kAeadIvBytes> iv{};
};

using AeadTag = std::array<std::byte, kAeadTagBytes>;

class AeadCipher {
 public:
  enum class Direction { seal, open };
  AeadCipher(const TrafficKey& key, Direction direction);
  ~AeadCipher();
  AeadCipher(const AeadCipher&) = delete;
  AeadCipher& operator=(const AeadCipher&) = delete;
  AeadCipher(AeadCipher&& other) noexcept;
  AeadCipher& operator=(AeadCipher&& other) noexcept;

  // Starts record `seq` with associated data `aad` (authenticated, not encrypted).
  void begin(std::uint64_t seq, std::span<const std::byte> aad);
  // More associated data: only before the first crypt() of the record (GCM's rule).
  void authenticate(std::span<const std::byte> more_aad);
  // Encrypts (seal) or decrypts (open) `in` into `out` (same size; in == out allowed).
  void crypt(std::span<const std::byte> in, std::byte* out);
  // seal: the record's tag.
  AeadTag finish_seal();
  // open: true when `tag` is the record's tag. On false, whatever crypt() wrote is not authentic.
  bool finish_open(std::span<const std::byte, kAeadTagBytes> tag);

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
  std::array<std::uint8_t, kAeadIvBytes> iv_{};
  Direction direction_;
};

// One-shot helpers over a contiguous record.
AeadTag aead_seal(AeadCipher& c, std::uint64_t seq, std::span<const std::byte> aad, std::span<const std::byte> in,
                  std::byte* out);
bool aead_open(AeadCipher& c, std::uint64_t seq, std::span<const std::byte> aad, std::span<const std::byte> in,
               std::byte* out, std::span<const std::byte, kAeadTagBytes> tag);

}  // namespace hymig
