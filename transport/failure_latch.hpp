// A reliable channel's byte stream is out of step once an operation fails half-way (a timeout, a
// malformed header, a peer gone): the latch keeps the first such error, and every later operation
// throws again, naming it. The TCP and the RC channels share it.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "core/error.hpp"

namespace hymig {

class FailureLatch {
 public:
  // Names the connection in the message, e.g. "connection to 10.0.0.2:7470".
  void set_connection(std::string name) { connection_ = std::move(name); }

  void ensure_usable() const {
    if (broken_) throw Error(broken_->kind(), connection_ + " is unusable after an earlier error: " + broken_->what());
  }

  // Runs one stream operation; any failure inside is remembered and rethrown.
  template <typename F>
  auto guarded(F&& f) -> decltype(f()) {
    ensure_usable();
    try {
      return f();
    } catch (const Error& e) {
      broken_ = e;
      throw;
    } catch (const std::exception& e) {
      broken_ = Error(ErrorKind::io, e.what());
      throw;
    }
  }

  bool broken() const { return broken_.has_value(); }

 private:
  std::string connection_ = "connection";
  std::optional<Error> broken_;
};

}  // namespace hymig
