// Mutual authentication by the cluster key: a TLS 1.3 handshake (OpenSSL) on a connected TCP
// socket, with the key as an external pre-shared key in psk_dhe_ke mode (RFC 8446 §2.2, §4.2.9):
// both sides prove they hold the key (the PSK binder and both Finished messages), an X25519
// exchange gives forward secrecy, and the exported secret is bound to both randoms and the whole
// transcript. No certificates, no session tickets, no resumption, no 0-RTT; ALPN "hymig/2" pins
// the framing (the hello then checks the wire version). The source is the TLS client, the
// destination the server. Once it returns, TLS is done with the socket: the session's records
// are protected by keys derived from the export (security/session_secrets.hpp), on this
// connection and on every other channel of the session.
#pragma once

#include <chrono>
#include <string>

#include "security/cluster_key.hpp"
#include "security/session_secrets.hpp"

namespace hymig {

// `socket` is connected and non-blocking; the handshake finishes by `deadline` or fails. Throws
// Error{refused} when the peer does not prove the key (or is not hymig 2), Error{timeout} past the
// deadline, Error{peer_vanished} when the peer closes. Messages stay generic about the peer's
// side; `detail`, when given, receives OpenSSL's own reason for the local log.
SessionSecrets tls_psk_handshake(int socket, Role role, const ClusterKey& key,
                                 std::chrono::steady_clock::time_point deadline, std::string* detail = nullptr);

}  // namespace hymig
