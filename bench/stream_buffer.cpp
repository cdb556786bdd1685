#include "bench/stream_buffer.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace hymig::bench {

Mapping populated_buffer(std::uint64_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED)
    throw Error(ErrorKind::io, "cannot map a " + std::to_string(bytes) + "-byte buffer: " + std::strerror(errno) +
                                   " (not enough memory?)");
  return Mapping(p, bytes);
}

void fill_incompressible(std::span<std::byte> out, std::uint64_t seed) {
  std::uint64_t state = seed;
  std::size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    z |= 0x0101010101010101ull;
    std::memcpy(out.data() + i, &z, 8);
  }
  for (; i < out.size(); ++i) out[i] = std::byte{0x5a};
}

}  // namespace hymig::bench
