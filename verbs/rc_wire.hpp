// What the RC channel puts on the wire, besides the application's bytes.
//
// Frame header, first 24 bytes of the first SEND of every message (all little-endian):
//   u32 magic 0x524D5948 ("HYMR" as bytes) | u8 version 1 | u8 type | u16 flags 0 |
//   u32 body_len | u32 reserved 0 | u64 payload_len
// Header, body and payload form one byte stream cut into SENDs of at most the receiver's slot size;
// the last SEND of a message ends with it, so the next header is at offset 0 of a new SEND.
//
// Connection private data (in the rdma_cm connect request and its reply), 32 bytes:
//   u32 magic 0x43524D48 ("HMRC") | u8 version 1 | u8 flags 0 | u16 receive slots |
//   u32 slot bytes | u32 credit rkey | u64 credit address | u64 reserved 0
// The credit word is 8 registered bytes the peer RDMA-WRITEs its "slots re-posted so far" into.
// Decoders check every field before anything is allocated (Error{protocol} naming the field).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "transport/frame_limits.hpp"

namespace hymig::verbs {

constexpr std::uint32_t kRcFrameMagic = 0x524D5948;
constexpr std::uint8_t kRcFrameVersion = 1;
constexpr std::size_t kRcFrameHeaderBytes = 24;

struct RcFrameHeader {
  std::uint8_t type = 0;
  std::uint32_t body_len = 0;
  std::uint64_t payload_len = 0;
};

std::array<std::byte, kRcFrameHeaderBytes> encode_rc_frame_header(const RcFrameHeader& header);
RcFrameHeader decode_rc_frame_header(std::span<const std::byte> bytes, const FrameLimits& limits);

constexpr std::uint32_t kRcConnectMagic = 0x43524D48;
constexpr std::uint8_t kRcConnectVersion = 1;
constexpr std::size_t kRcConnectBytes = 32;

struct RcConnectInfo {
  std::uint16_t recv_slots = 0;
  std::uint32_t slot_bytes = 0;
  std::uint32_t credit_rkey = 0;
  std::uint64_t credit_addr = 0;
};

std::array<std::byte, kRcConnectBytes> encode_rc_connect(const RcConnectInfo& info);
// `bytes` may be longer (rdma_cm pads private data); slots 1..65535, slot bytes 1 KiB..16 MiB.
RcConnectInfo decode_rc_connect(std::span<const std::byte> bytes);

}  // namespace hymig::verbs
