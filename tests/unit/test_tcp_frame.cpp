// The TCP frame header: layout on the wire and validation of every field.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "tcp/tcp_frame.hpp"

namespace hymig {
namespace {

TEST(TcpFrame, LayoutIsLittleEndianWithMagicHYMC) {
  const auto bytes = encode_frame_header(FrameHeader{0xAB, 0x01020304, 0x0A0B0C0D});
  const unsigned char expected[16] = {'H', 'Y', 'M', 'C', 1, 0xAB, 0, 0, 4, 3, 2, 1, 0x0D, 0x0C, 0x0B, 0x0A};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(unsigned(bytes[i]), unsigned(expected[i])) << "byte " << i;
}

TEST(TcpFrame, RoundTrips) {
  FrameLimits limits;
  const auto h = decode_frame_header(encode_frame_header(FrameHeader{7, 1024, 4096}), limits);
  EXPECT_EQ(h.type, 7);
  EXPECT_EQ(h.body_len, 1024u);
  EXPECT_EQ(h.payload_len, 4096u);
}

void expect_protocol_error(std::array<std::byte, 16> bytes, const FrameLimits& limits, const std::string& needle) {
  try {
    decode_frame_header(bytes, limits);
    ADD_FAILURE() << "accepted a bad header, expected: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::protocol);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TcpFrame, RejectsEveryBadField) {
  FrameLimits limits;
  auto good = encode_frame_header(FrameHeader{1, 10, 10});
  auto bad = good;
  bad[0] = std::byte{'X'};
  expect_protocol_error(bad, limits, "bad frame magic 0x434D5958");
  bad = good;
  bad[4] = std::byte{2};
  expect_protocol_error(bad, limits, "version 2");
  bad = good;
  bad[7] = std::byte{1};
  expect_protocol_error(bad, limits, "flags 0x00000100");
  expect_protocol_error(encode_frame_header(FrameHeader{1, 9999999, 0}), limits,
                        "frame body 9999999 bytes exceeds limit 1048576");
  limits.max_payload = 100;
  expect_protocol_error(encode_frame_header(FrameHeader{1, 0, 101}), limits, "frame payload 101 bytes exceeds limit 100");
  EXPECT_NO_THROW(decode_frame_header(encode_frame_header(FrameHeader{1, 1048576, 100}), limits));
}

}  // namespace
}  // namespace hymig
