// The 16-byte header that frames a message on the TCP stream (all fields little-endian):
//   u32 magic 0x434D5948 ("HYMC" as bytes) | u8 version 1 | u8 type | u16 flags 0 |
//   u32 body_len | u32 payload_len
// followed by body_len bytes of body and payload_len raw bytes. Decoding checks every field
// before the receiver allocates or reads anything (tests/unit/test_tcp_frame.cpp: every bad field).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "transport/frame_limits.hpp"

namespace hymig {

constexpr std::uint32_t kFrameMagic = 0x434D5948;
constexpr std::uint8_t kFrameVersion = 1;
constexpr std::size_t kFrameHeaderBytes = 16;
constexpr std::uint64_t kMaxFrameField = 0xFFFFFFFFu;  // body_len and payload_len are u32

struct FrameHeader {
  std::uint8_t type = 0;
  std::uint32_t body_len = 0;
  std::uint32_t payload_len = 0;
};

std::array<std::byte, kFrameHeaderBytes> encode_frame_header(const FrameHeader& header);

// Throws Error{protocol} naming the first field that is wrong ("bad frame magic 0x...", "frame body
// 9999999 bytes exceeds limit 1048576").
FrameHeader decode_frame_header(std::span<const std::byte, kFrameHeaderBytes> bytes, const FrameLimits& limits);

}  // namespace hymig
