// Errors that cross module boundaries. Each carries a kind so the CLI can map it to an exit code
// and a message that names what failed and what to do.
#pragma once

#include <stdexcept>
#include <string>

namespace hymig {

enum class ErrorKind {
  usage,         // bad flag, bad spec: fix the command line
  io,            // a system call failed (socket, file, mmap)
  peer_vanished, // the other side closed or reset the connection
  timeout,       // the other side stayed silent past the deadline
  protocol,      // the other side sent something invalid
  refused,       // the other side answered with an abort and a reason
  verify,        // digests did not match
  no_space,      // the destination cannot hold the image
  cancelled,     // the operator (a signal) or a caller's deadline stopped it
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Throws Error{io} with "what: strerror(errno)".
[[noreturn]] void throw_errno(const std::string& what);
[[noreturn]] void throw_errno(const std::string& what, int err);

}  // namespace hymig
