// Little-endian field encoding with bounds checks. A read past the end throws Error{protocol}:
// every decoder is built on ByteReader, so truncated input can never read out of bounds.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace hymig {

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<std::byte>& out) : out_(out) {}
  template <typename T>
  void put(T v) {
    static_assert(std::is_integral_v<T>);
    const auto at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));  // little-endian host (checked in page_hash.cpp)
  }
  void put_bytes(std::span<const std::byte> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void put_varint(std::uint64_t v) {
    while (v >= 0x80) {
      put<std::uint8_t>(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    put<std::uint8_t>(static_cast<std::uint8_t>(v));
  }

 private:
  std::vector<std::byte>& out_;
};

class ByteReader {
 public:
  ByteReader(std::span<const std::byte> in, const char* what) : in_(in), what_(what) {}
  template <typename T>
  T get() {
    static_assert(std::is_integral_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::span<const std::byte> get_bytes(std::size_t n) {
    need(n);
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::uint64_t get_varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto b = get<std::uint8_t>();
      // The tenth byte holds bit 63 only: anything more would be silently cut off.
      if (shift == 63 && b > 1) break;
      v |= std::uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    throw Error(ErrorKind::protocol, std::string(what_) + ": varint longer than 64 bits");
  }
  std::size_t remaining() const { return in_.size() - pos_; }
  void expect_end() const {
    if (remaining() != 0)
      throw Error(ErrorKind::protocol, std::string(what_) + ": " + std::to_string(remaining()) + " trailing bytes");
  }

 private:
  void need(std::size_t n) const {
    if (in_.size() - pos_ < n)
      throw Error(ErrorKind::protocol, std::string(what_) + ": truncated (needs " + std::to_string(n) +
                                           " more bytes, has " + std::to_string(in_.size() - pos_) + ")");
  }
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  const char* what_;
};

}  // namespace hymig
