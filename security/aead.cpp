#include "security/aead.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <climits>
#include <cstring>
#include <utility>

#include "core/error.hpp"

namespace hymig {
namespace {

[[noreturn]] void fail(const char* what) { throw Error(ErrorKind::io, std::string("AES-GCM: ") + what + " failed"); }

int as_int(std::size_t n) {
  if (n > INT_MAX) throw Error(ErrorKind::usage, "AES-GCM: a piece larger than 2 GiB");
  return static_cast<int>(n);
}

}  // namespace

AeadCipher::AeadCipher(const TrafficKey& key, Direction direction) : iv_(key.iv), direction_(direction) {
  ctx_ = EVP_CIPHER_CTX_new();
  if (!ctx_) fail("context allocation");
  const int enc = direction == Direction::seal ? 1 : 0;
  if (EVP_CipherInit_ex(ctx_, EVP_aes_128_gcm(), nullptr, nullptr, nullptr, enc) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_IVLEN, kAeadIvBytes, nullptr) != 1 ||
      EVP_CipherInit_ex(ctx_, nullptr, nullptr, key.key.data(), nullptr, enc) != 1) {
    EVP_CIPHER_CTX_free(ctx_);
    fail("key setup");
  }
}

AeadCipher::~AeadCipher() { EVP_CIPHER_CTX_free(ctx_); }

AeadCipher::AeadCipher(AeadCipher&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), iv_(other.iv_), direction_(other.direction_) {}

AeadCipher& AeadCipher::operator=(AeadCipher&& other) noexcept {
  if (this != &other) {
    EVP_CIPHER_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
    iv_ = other.iv_;
    direction_ = other.direction_;
  }
  return *this;
}

void AeadCipher::begin(std::uint64_t seq, std::span<const std::byte> aad) {
  // RFC 8446 §5.3: the sequence number, big-endian, left-padded to the IV's length, XOR the IV.
  std::array<std::uint8_t, kAeadIvBytes> nonce = iv_;
  for (int i = 0; i < 8; ++i) nonce[kAeadIvBytes - 1 - i] ^= static_cast<std::uint8_t>(seq >> (8 * i));
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce.data(), -1) != 1) fail("nonce setup");
  authenticate(aad);
}

void AeadCipher::authenticate(std::span<const std::byte> more_aad) {
  if (more_aad.empty()) return;
  int len = 0;
  if (EVP_CipherUpdate(ctx_, nullptr, &len, reinterpret_cast<const unsigned char*>(more_aad.data()),
                       as_int(more_aad.size())) != 1)
    fail("associated data");
}

void AeadCipher::crypt(std::span<const std::byte> in, std::byte* out) {
  if (in.empty()) return;
  int len = 0;
  if (EVP_CipherUpdate(ctx_, reinterpret_cast<unsigned char*>(out), &len,
                       reinterpret_cast<const unsigned char*>(in.data()), as_int(in.size())) != 1 ||
      static_cast<std::size_t>(len) != in.size())
    fail("update");
}

AeadTag AeadCipher::finish_seal() {
  int len = 0;
  unsigned char none[16];
  if (EVP_CipherFinal_ex(ctx_, none, &len) != 1) fail("final");
  AeadTag tag;
  // The parameter itself, not EVP_CIPHER_CTX_ctrl (which builds this array and converts back): a
  // fifth less per datagram, where the records are small.
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag.data(), kAeadTagBytes),
                         OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_get_params(ctx_, params) != 1) fail("tag");
  return tag;
}

bool AeadCipher::finish_open(std::span<const std::byte, kAeadTagBytes> tag) {
  // OpenSSL takes a non-const pointer but only reads the expected tag.
  AeadTag expected;
  std::memcpy(expected.data(), tag.data(), kAeadTagBytes);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, expected.data(), kAeadTagBytes),
      OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_set_params(ctx_, params) != 1) fail("tag");
  int len = 0;
  unsigned char none[16];
  return EVP_CipherFinal_ex(ctx_, none, &len) == 1;
}

AeadTag aead_seal(AeadCipher& c, std::uint64_t seq, std::span<const std::byte> aad, std::span<const std::byte> in,
                  std::byte* out) {
  c.begin(seq, aad);
  c.crypt(in, out);
  return c.finish_seal();
}

bool aead_open(AeadCipher& c, std::uint64_t seq, std::span<const std::byte> aad, std::span<const std::byte> in,
               std::byte* out, std::span<const std::byte, kAeadTagBytes> tag) {
  c.begin(seq, aad);
  c.crypt(in, out);
  return c.finish_open(tag);
}

}  // namespace hymig
