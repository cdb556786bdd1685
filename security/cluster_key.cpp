#include "security/cluster_key.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.hpp"

namespace hymig {
namespace {

constexpr std::size_t kHexChars = 64;

std::string mode_text(mode_t mode) {
  char m[8];
  std::snprintf(m, sizeof m, "%04o", unsigned(mode & 07777));
  return m;
}

std::string hex(const std::uint8_t* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

void init_sodium() {
  if (sodium_init() < 0) throw Error(ErrorKind::io, "libsodium failed to initialise");
}

}  // namespace

std::string ClusterKey::id() const {
  init_sodium();
  std::uint8_t h[8];
  static const unsigned char ctx[] = "hymig key id v2";
  crypto_generichash(h, sizeof h, bytes.data(), bytes.size(), ctx, sizeof ctx - 1);
  return hex(h, sizeof h);
}

std::string resolve_key_file(const std::string& option) {
  if (!option.empty()) return option;
  if (const char* e = std::getenv(kKeyFileEnv); e && *e) return e;
  return kDefaultKeyFile;
}

ClusterKey load_cluster_key(const std::string& path) {
  const std::string fix = "make one with `hymig keygen " + path + "` and copy it to every node (mode 0600)";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) throw Error(ErrorKind::usage, "no cluster key at '" + path + "': " + fix);
    throw Error(ErrorKind::usage, "cannot read the cluster key '" + path + "': " + std::strerror(err) +
                                      (err == EACCES ? " (run as the user that owns it, usually root)" : ""));
  }
  struct stat st {};
  char buf[kHexChars + 8];
  ssize_t n = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::usage, "the cluster key '" + path + "' is not a regular file");
  if (st.st_mode & (S_IRWXO | S_IWGRP))
    throw Error(ErrorKind::usage, "the cluster key '" + path + "' is accessible to other users (mode " +
                                      mode_text(st.st_mode) + "): chmod 600 " + path);
  // The hex digits, then at most one line end.
  std::size_t len = n < 0 ? 0 : std::size_t(n);
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) --len;
  ClusterKey key;
  bool ok = n > 0 && len == kHexChars;
  for (std::size_t i = 0; ok && i < key.bytes.size(); ++i) {
    unsigned v = 0;
    for (int k = 0; k < 2; ++k) {
      const char c = buf[2 * i + k];
      const int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) ok = false;
      v = v * 16 + unsigned(d < 0 ? 0 : d);
    }
    key.bytes[i] = static_cast<std::uint8_t>(v);
  }
  sodium_memzero(buf, sizeof buf);
  if (!ok) throw Error(ErrorKind::usage, "'" + path + "' is not a hymig cluster key (64 hex digits): " + fix);
  return key;
}

ClusterKey write_new_cluster_key(const std::string& path) {
  init_sodium();
  ClusterKey key;
  randombytes_buf(key.bytes.data(), key.bytes.size());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) throw Error(ErrorKind::usage, "'" + path + "' exists: hymig keygen never replaces a key (remove it first)");
    throw Error(ErrorKind::io, "cannot create '" + path + "': " + std::strerror(err));
  }
  ::fchmod(fd, 0600);  // whatever the umask
  const std::string text = hex(key.bytes.data(), key.bytes.size()) + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw Error(ErrorKind::io, "cannot write '" + path + "': " + std::strerror(err));
  }
  return key;
}

}  // namespace hymig
