// Gather pieces: a datagram or a page batch is described by pointers into memory the caller owns
// (the image itself, for zero-copy), never copied into a staging buffer by the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace hymig {

struct ConstBuffer {
  const std::byte* data = nullptr;
  std::size_t size = 0;
};

// One outgoing datagram: its bytes are the concatenation of `parts` (header first, then payloads).
struct OutDatagram {
  std::span<const ConstBuffer> parts;
  std::size_t bytes = 0;  // sum of parts[i].size, precomputed by the caller
};

// One received datagram: a view into the channel's receive buffers, valid until the next
// receive_batch() call on the same channel.
struct InDatagram {
  std::span<const std::byte> bytes;
};

}  // namespace hymig

namespace hymig {

struct MutableBuffer {
  std::byte* data = nullptr;
  std::size_t size = 0;
};

}  // namespace hymig
