// Every decoder of peer input that takes bytes (or text) and nothing else, by name: what the
// libFuzzer targets built from fuzz/decoder_target.cpp run, and what the unit test over the seed
// corpus (tests/unit/test_fuzz_corpus.cpp) runs on fuzz/corpus/NAME/.
//
// run() throws hymig::Error when the decoder rejects the input (the expected outcome for junk) and
// returns when it accepts it. On acceptance it also checks what the decoder promises: what it
// returns is in range, and encoding it and decoding that again gives the same encoding (the codec
// has one meaning per message). A broken promise aborts (FUZZ_CHECK): a finding, like a crash.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace hymig::fuzz {

struct Decoder {
  const char* name;
  const char* what;  // the decoder(s) it runs, for docs and the test's messages
  void (*run)(std::span<const std::byte> input);
};

const std::vector<Decoder>& decoders();
const Decoder* find_decoder(std::string_view name);

// Aborts with the message when `ok` is false: the fuzzer reports it with the input.
void check(bool ok, const char* what);

}  // namespace hymig::fuzz

#define FUZZ_CHECK(cond) ::hymig::fuzz::check((cond), #cond)
