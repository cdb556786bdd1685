#include "security/session_secrets.hpp"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sodium.h>

#include <string>

#include "core/error.hpp"

namespace hymig {

const char* to_string(Role r) { return r == Role::source ? "source" : "destination"; }

void SessionSecrets::derive(std::string_view purpose, std::span<std::uint8_t> out) const {
  const std::string info = "hymig v2 " + std::string(purpose);
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (!kdf) throw Error(ErrorKind::io, "OpenSSL has no HKDF");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (!ctx) throw Error(ErrorKind::io, "HKDF context allocation failed");
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(exporter.data()), exporter.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
      OSSL_PARAM_construct_end()};
  const int rc = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) throw Error(ErrorKind::io, "HKDF-Expand failed for '" + info + "'");
}

TrafficKey SessionSecrets::traffic_key(std::string_view purpose, Role sender) const {
  std::array<std::uint8_t, kAeadKeyBytes + kAeadIvBytes> m;
  derive(std::string(purpose) + " from " + to_string(sender), m);
  TrafficKey k;
  std::copy(m.begin(), m.begin() + kAeadKeyBytes, k.key.begin());
  std::copy(m.begin() + kAeadKeyBytes, m.end(), k.iv.begin());
  sodium_memzero(m.data(), m.size());
  return k;
}

SessionSecrets SessionSecrets::random_for_testing() {
  if (sodium_init() < 0) throw Error(ErrorKind::io, "libsodium failed to initialise");
  SessionSecrets s;
  randombytes_buf(s.exporter.data(), s.exporter.size());
  return s;
}

}  // namespace hymig
