#include "security/tls_psk_handshake.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/error.hpp"

namespace hymig {
namespace {

constexpr unsigned char kAlpn[] = "\x07hymig/2";
constexpr const char kExportLabel[] = "EXPORTER-hymig-session-v2";
// TLS_AES_128_GCM_SHA256: the suite every TLS 1.3 stack has; its hash is the PSK's.
constexpr unsigned char kSuite[2] = {0x13, 0x01};

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// The per-connection state the PSK callbacks need.
struct PskState {
  const ClusterKey* key = nullptr;
  std::string identity;  // "hymig-cluster-key <id>"
  bool peer_identity_unknown = false;
};

int state_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

PskState& state_of(SSL* ssl) { return *static_cast<PskState*>(SSL_get_ex_data(ssl, state_index())); }

SSL_SESSION* psk_session(SSL* ssl, const ClusterKey& key) {
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kSuite);
  if (!cipher) return nullptr;
  SSL_SESSION* s = SSL_SESSION_new();
  if (!s) return nullptr;
  if (SSL_SESSION_set1_master_key(s, key.bytes.data(), key.bytes.size()) != 1 || SSL_SESSION_set_cipher(s, cipher) != 1 ||
      SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

int use_psk(SSL* ssl, const EVP_MD* md, const unsigned char** id, std::size_t* idlen, SSL_SESSION** sess) {
  PskState& st = state_of(ssl);
  SSL_SESSION* s = psk_session(ssl, *st.key);
  if (!s) return 0;
  // After a HelloRetryRequest the suite's hash must match; ours is SHA-256 throughout.
  if (md && md != SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s))) {
    SSL_SESSION_free(s);
    *sess = nullptr;
    return 1;
  }
  *id = reinterpret_cast<const unsigned char*>(st.identity.data());
  *idlen = st.identity.size();
  *sess = s;
  return 1;
}

int find_psk(SSL* ssl, const unsigned char* id, std::size_t idlen, SSL_SESSION** sess) {
  PskState& st = state_of(ssl);
  if (std::string(reinterpret_cast<const char*>(id), idlen) != st.identity) {
    st.peer_identity_unknown = true;
    *sess = nullptr;  // no PSK: with no certificate either, the handshake fails
    return 1;
  }
  *sess = psk_session(ssl, *st.key);
  return *sess ? 1 : 0;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen, void*) {
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, kAlpn, sizeof kAlpn - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

std::string openssl_errors() {
  std::string s;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    s += (s.empty() ? "" : "; ") + std::string(buf);
  }
  return s;
}

std::unique_ptr<SSL_CTX, SslCtxFree> make_context(Role role) {
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(role == Role::source ? TLS_client_method() : TLS_server_method()));
  if (!ctx) throw Error(ErrorKind::io, "OpenSSL: cannot make a TLS context: " + openssl_errors());
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(c, 0);  // nothing follows the handshake on the socket
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256") != 1)
    throw Error(ErrorKind::io, "OpenSSL: TLS_AES_128_GCM_SHA256 unavailable: " + openssl_errors());
  if (role == Role::source) {
    SSL_CTX_set_psk_use_session_callback(c, use_psk);
    if (SSL_CTX_set_alpn_protos(c, kAlpn, sizeof kAlpn - 1) != 0) throw Error(ErrorKind::io, "OpenSSL: cannot set ALPN");
  } else {
    SSL_CTX_set_psk_find_session_callback(c, find_psk);
    SSL_CTX_set_alpn_select_cb(c, select_alpn, nullptr);
  }
  return ctx;
}

}  // namespace

SessionSecrets tls_psk_handshake(int socket, Role role, const ClusterKey& key,
                                 std::chrono::steady_clock::time_point deadline, std::string* detail) {
  ERR_clear_error();
  auto ctx = make_context(role);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (!ssl) throw Error(ErrorKind::io, "OpenSSL: cannot make a TLS connection: " + openssl_errors());
  PskState st;
  st.key = &key;
  st.identity = "hymig-cluster-key " + key.id();
  SSL_set_ex_data(ssl.get(), state_index(), &st);
  // The default socket BIO, without read-ahead: OpenSSL reads exactly the handshake's records, so
  // the first protected frame after it stays in the socket for the channel.
  if (SSL_set_fd(ssl.get(), socket) != 1) throw Error(ErrorKind::io, "OpenSSL: cannot attach the socket");
  SSL_set_read_ahead(ssl.get(), 0);

  const char* peer = role == Role::source ? "the destination" : "the source";
  auto refuse = [&](const std::string& why) -> Error {
    if (detail) *detail = why;
    return Error(ErrorKind::refused, std::string("authentication with ") + peer +
                                         " failed: it does not hold this cluster key, or is not hymig 2 (check --key-file on both "
                                         "sides)");
  };
  for (;;) {
    const int rc = role == Role::source ? SSL_connect(ssl.get()) : SSL_accept(ssl.get());
    if (rc == 1) break;
    const int err = SSL_get_error(ssl.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        if (detail) *detail = "handshake not finished by the deadline";
        throw Error(ErrorKind::timeout, std::string("the handshake with ") + peer + " did not finish in time");
      }
      pollfd p{socket, static_cast<short>(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
      const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
      if (n < 0 && errno != EINTR) throw Error(ErrorKind::io, std::string("poll during the handshake: ") + std::strerror(errno));
      continue;
    }
    // OpenSSL 3 reports a peer that closed without an alert as SSL_ERROR_SSL with this reason.
    const unsigned long first = ERR_peek_error();
    const bool eof = ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
    const std::string why = openssl_errors();
    if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN || eof) {
      if (st.peer_identity_unknown) throw refuse("the peer presented another cluster key id");
      if (detail) *detail = "the peer closed the connection during the handshake" + (why.empty() ? "" : ": " + why);
      throw Error(ErrorKind::peer_vanished, std::string(peer) + " closed the connection during the authentication handshake "
                                                                "(a wrong cluster key, not hymig 2, or its handshake deadline "
                                                                "passed on a very busy host: its log says which)");
    }
    throw refuse(st.peer_identity_unknown ? "the peer presented another cluster key id" : why);
  }
  // TLS 1.3 with our PSK and ALPN, nothing else.
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(ssl.get(), &alpn, &alpn_len);
  if (SSL_version(ssl.get()) != TLS1_3_VERSION || !SSL_session_reused(ssl.get()) || alpn_len != sizeof kAlpn - 2 ||
      std::memcmp(alpn, kAlpn + 1, alpn_len) != 0)
    throw refuse("the handshake did not use the cluster key with hymig/2");
  if (SSL_has_pending(ssl.get())) throw refuse("data buffered past the handshake");

  SessionSecrets s;
  if (SSL_export_keying_material(ssl.get(), s.exporter.data(), s.exporter.size(), kExportLabel, sizeof kExportLabel - 1,
                                 nullptr, 0, 0) != 1)
    throw Error(ErrorKind::io, "OpenSSL: keying material export failed: " + openssl_errors());
  // SSL_free sends nothing (no close_notify without SSL_shutdown): the socket is the channel's now.
  return s;
}

}  // namespace hymig
