#include "core/error.hpp"

#include <cerrno>
#include <cstring>

namespace hymig {

void throw_errno(const std::string& what, int err) {
  ErrorKind kind = ErrorKind::io;
  if (err == ECONNRESET || err == EPIPE || err == ECONNREFUSED) kind = ErrorKind::peer_vanished;
  if (err == ENOSPC || err == EDQUOT) kind = ErrorKind::no_space;
  if (err == ETIMEDOUT) kind = ErrorKind::timeout;
  throw Error(kind, what + ": " + std::strerror(err));
}

void throw_errno(const std::string& what) { throw_errno(what, errno); }

}  // namespace hymig
