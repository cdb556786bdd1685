// The cluster key: 32 random bytes every node of a cluster holds in a root-only file. A peer is
// admitted only if it proves it holds the same key (security/tls_psk_handshake.hpp); there is no
// unauthenticated mode. File format: 64 lowercase hex digits and a newline (`hymig keygen`).
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace hymig {

inline constexpr const char* kDefaultKeyFile = "/etc/hymig/cluster.key";
// Where the key file is looked for when no --key-file (or key-file config key) names one.
inline constexpr const char* kKeyFileEnv = "HYMIG_KEY_FILE";

struct ClusterKey {
  std::array<std::uint8_t, 32> bytes{};
  // A short public name of the key (BLAKE2b of it, 8 bytes in hex): safe to log and compare.
  std::string id() const;
};

// Reads and checks a key file. Throws Error{usage} naming the file and the fix: missing or
// unreadable ("make one with `hymig keygen FILE`"), not a key, or readable by other users.
ClusterKey load_cluster_key(const std::string& path);

// Writes a fresh random key to `path` (mode 0600, created; an existing file is never replaced).
// Throws Error{usage} when the file exists, Error{io} when it cannot be written.
ClusterKey write_new_cluster_key(const std::string& path);

// The key file to use: `option` if set, else $HYMIG_KEY_FILE, else kDefaultKeyFile.
std::string resolve_key_file(const std::string& option);

}  // namespace hymig
