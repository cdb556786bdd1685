// --image specs (images/image_spec.hpp): parsed only, nothing opened or allocated.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "core/error.hpp"
#include "fuzz/decoder_table.hpp"
#include "images/image_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const hymig::ImageSpec spec = hymig::parse_image_spec(text);
    if (const auto* s = std::get_if<hymig::SyntheticSpec>(&spec)) {
      FUZZ_CHECK(s->zero_fraction >= 0 && s->zero_fraction <= 1 && s->compressible >= 0 && s->compressible <= 1);
      FUZZ_CHECK(s->writers <= 64);
    } else {
      const auto& f = std::get<hymig::FileImageSpec>(spec);
      FUZZ_CHECK(!f.path.empty());
      FUZZ_CHECK(!f.pause_pid || *f.pause_pid > 0);  // never 0 or negative: kill() would hit a group
    }
  } catch (const hymig::Error& e) {
    FUZZ_CHECK(e.kind() == hymig::ErrorKind::usage);
  }
  return 0;
}
