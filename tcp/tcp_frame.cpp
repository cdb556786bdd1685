#include "tcp/tcp_frame.hpp"

#include <cstdio>
#include <string>

#include "core/error.hpp"

namespace hymig {

namespace {

void put_le(std::byte* at, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) at[i] = std::byte((value >> (8 * i)) & 0xFF);
}

std::uint32_t get_le(const std::byte* at, int bytes) {
  std::uint32_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | std::uint32_t(at[i]);
  return value;
}

std::string hex(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08X", value);
  return text;
}

}  // namespace

std::array<std::byte, kFrameHeaderBytes> encode_frame_header(const FrameHeader& header) {
  std::array<std::byte, kFrameHeaderBytes> out{};
  put_le(&out[0], kFrameMagic, 4);
  out[4] = std::byte(kFrameVersion);
  out[5] = std::byte(header.type);
  put_le(&out[6], 0, 2);
  put_le(&out[8], header.body_len, 4);
  put_le(&out[12], header.payload_len, 4);
  return out;
}

FrameHeader decode_frame_header(std::span<const std::byte, kFrameHeaderBytes> bytes, const FrameLimits& limits) {
  const std::uint32_t magic = get_le(&bytes[0], 4);
  if (magic != kFrameMagic)
    throw Error(ErrorKind::protocol, "bad frame magic " + hex(magic) + " (expected " + hex(kFrameMagic) +
                                         "): the peer is not hymig or the stream lost sync");
  const auto version = std::uint8_t(bytes[4]);
  if (version != kFrameVersion)
    throw Error(ErrorKind::protocol, "unsupported frame version " + std::to_string(version) + " (this build speaks " +
                                         std::to_string(kFrameVersion) + "): upgrade the older side");
  const std::uint32_t flags = get_le(&bytes[6], 2);
  if (flags != 0) throw Error(ErrorKind::protocol, "frame flags " + hex(flags) + " set; this version knows none");
  FrameHeader header;
  header.type = std::uint8_t(bytes[5]);
  header.body_len = get_le(&bytes[8], 4);
  header.payload_len = get_le(&bytes[12], 4);
  if (header.body_len > limits.max_body)
    throw Error(ErrorKind::protocol, "frame body " + std::to_string(header.body_len) + " bytes exceeds limit " +
                                         std::to_string(limits.max_body));
  if (header.payload_len > limits.max_payload)
    throw Error(ErrorKind::protocol, "frame payload " + std::to_string(header.payload_len) + " bytes exceeds limit " +
                                         std::to_string(limits.max_payload));
  return header;
}

}  // namespace hymig
