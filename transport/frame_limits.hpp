// The bounds a reliable channel puts on what a peer may announce in a frame header, checked before
// anything is allocated or read: the TCP and the RC framing share them (set_limits()).
#pragma once

#include <cstddef>
#include <cstdint>

namespace hymig {

struct FrameLimits {
  std::size_t max_body = 1024 * 1024;
  std::uint64_t max_payload = 64ull * 1024 * 1024;
};

}  // namespace hymig
