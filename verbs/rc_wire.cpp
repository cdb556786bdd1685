#include "verbs/rc_wire.hpp"

#include <cstdio>
#include <string>

#include "core/error.hpp"

namespace hymig::verbs {

namespace {

template <typename T>
void put(std::byte* p, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = std::byte((std::uint64_t(v) >> (8 * i)) & 0xFF);
}
template <typename T>
T get(const std::byte* p) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= std::uint64_t(p[i]) << (8 * i);
  return T(v);
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::array<std::byte, kRcFrameHeaderBytes> encode_rc_frame_header(const RcFrameHeader& h) {
  std::array<std::byte, kRcFrameHeaderBytes> b{};
  put<std::uint32_t>(b.data(), kRcFrameMagic);
  put<std::uint8_t>(b.data() + 4, kRcFrameVersion);
  put<std::uint8_t>(b.data() + 5, h.type);
  put<std::uint16_t>(b.data() + 6, 0);
  put<std::uint32_t>(b.data() + 8, h.body_len);
  put<std::uint32_t>(b.data() + 12, 0);
  put<std::uint64_t>(b.data() + 16, h.payload_len);
  return b;
}

RcFrameHeader decode_rc_frame_header(std::span<const std::byte> b, const FrameLimits& limits) {
  if (b.size() < kRcFrameHeaderBytes)
    throw Error(ErrorKind::protocol, "RC message of " + std::to_string(b.size()) + " bytes is shorter than a " +
                                         std::to_string(kRcFrameHeaderBytes) + "-byte frame header");
  if (const auto magic = get<std::uint32_t>(b.data()); magic != kRcFrameMagic)
    throw Error(ErrorKind::protocol, "bad RC frame magic " + hex(magic) + " (expected " + hex(kRcFrameMagic) +
                                         "): not a hymig peer, or the stream is out of step");
  if (const auto version = get<std::uint8_t>(b.data() + 4); version != kRcFrameVersion)
    throw Error(ErrorKind::protocol, "RC frame version " + std::to_string(version) + " is not " +
                                         std::to_string(kRcFrameVersion) + ": upgrade both ends to the same hymig");
  if (const auto flags = get<std::uint16_t>(b.data() + 6); flags != 0)
    throw Error(ErrorKind::protocol, "RC frame flags " + hex(flags) + " are not 0");
  if (const auto reserved = get<std::uint32_t>(b.data() + 12); reserved != 0)
    throw Error(ErrorKind::protocol, "RC frame reserved field " + hex(reserved) + " is not 0");
  RcFrameHeader h;
  h.type = get<std::uint8_t>(b.data() + 5);
  h.body_len = get<std::uint32_t>(b.data() + 8);
  h.payload_len = get<std::uint64_t>(b.data() + 16);
  if (h.body_len > limits.max_body)
    throw Error(ErrorKind::protocol, "RC frame body " + std::to_string(h.body_len) + " bytes exceeds limit " +
                                         std::to_string(limits.max_body));
  if (h.payload_len > limits.max_payload)
    throw Error(ErrorKind::protocol, "RC frame payload " + std::to_string(h.payload_len) + " bytes exceeds limit " +
                                         std::to_string(limits.max_payload));
  return h;
}

std::array<std::byte, kRcConnectBytes> encode_rc_connect(const RcConnectInfo& info) {
  std::array<std::byte, kRcConnectBytes> b{};
  put<std::uint32_t>(b.data(), kRcConnectMagic);
  put<std::uint8_t>(b.data() + 4, kRcConnectVersion);
  put<std::uint8_t>(b.data() + 5, 0);
  put<std::uint16_t>(b.data() + 6, info.recv_slots);
  put<std::uint32_t>(b.data() + 8, info.slot_bytes);
  put<std::uint32_t>(b.data() + 12, info.credit_rkey);
  put<std::uint64_t>(b.data() + 16, info.credit_addr);
  put<std::uint64_t>(b.data() + 24, 0);
  return b;
}

RcConnectInfo decode_rc_connect(std::span<const std::byte> b) {
  if (b.size() < kRcConnectBytes)
    throw Error(ErrorKind::protocol, "RC connection private data of " + std::to_string(b.size()) +
                                         " bytes is shorter than " + std::to_string(kRcConnectBytes) +
                                         ": the peer is not a hymig RC endpoint");
  if (const auto magic = get<std::uint32_t>(b.data()); magic != kRcConnectMagic)
    throw Error(ErrorKind::protocol, "bad RC connection magic " + hex(magic) + ": the peer is not a hymig RC endpoint");
  if (const auto version = get<std::uint8_t>(b.data() + 4); version != kRcConnectVersion)
    throw Error(ErrorKind::protocol, "RC connection version " + std::to_string(version) + " is not " +
                                         std::to_string(kRcConnectVersion) + ": upgrade both ends to the same hymig");
  if (get<std::uint8_t>(b.data() + 5) != 0 || get<std::uint64_t>(b.data() + 24) != 0)
    throw Error(ErrorKind::protocol, "RC connection private data has non-zero reserved fields");
  RcConnectInfo info;
  info.recv_slots = get<std::uint16_t>(b.data() + 6);
  info.slot_bytes = get<std::uint32_t>(b.data() + 8);
  info.credit_rkey = get<std::uint32_t>(b.data() + 12);
  info.credit_addr = get<std::uint64_t>(b.data() + 16);
  if (info.recv_slots == 0) throw Error(ErrorKind::protocol, "RC peer announces 0 receive slots");
  if (info.slot_bytes < 1024 || info.slot_bytes > (16u << 20))
    throw Error(ErrorKind::protocol, "RC peer announces receive slots of " + std::to_string(info.slot_bytes) +
                                         " bytes (outside 1 KiB..16 MiB)");
  if (info.credit_addr == 0) throw Error(ErrorKind::protocol, "RC peer announces no credit word address");
  return info;
}

}  // namespace hymig::verbs
