// One libFuzzer target per entry of the decoder table: built once per name with
// -DHYMIG_FUZZ_DECODER="name" (fuzz/CMakeLists.txt), so each decoder is fuzzed on its own.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "core/error.hpp"
#include "fuzz/decoder_table.hpp"

namespace {
const hymig::fuzz::Decoder& the_decoder() {
  static const hymig::fuzz::Decoder* d = [] {
    const auto* found = hymig::fuzz::find_decoder(HYMIG_FUZZ_DECODER);
    if (!found) {
      std::fprintf(stderr, "fuzz: no decoder named %s\n", HYMIG_FUZZ_DECODER);
      std::abort();
    }
    return found;
  }();
  return *d;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    the_decoder().run({reinterpret_cast<const std::byte*>(data), size});
  } catch (const hymig::Error&) {
    // Rejected, as junk should be. Any other exception escapes and is a finding.
  }
  return 0;
}
