// `hymig serve`'s config file (KEY = VALUE lines): read with the command's own description and
// checked by the command's own code (cli/serve_config.hpp), as `hymig serve` does at start.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "cli/command.hpp"
#include "cli/serve_config.hpp"
#include "core/error.hpp"
#include "fuzz/decoder_table.hpp"

namespace po = boost::program_options;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  po::options_description desc("options");
  hymig::cli::add_serve_options(desc);
  hymig::cli::add_key_options(desc);
  po::variables_map vm;
  try {
    hymig::cli::store_config(in, desc, vm);
    po::notify(vm);
    const hymig::cli::ServeConfig cfg = hymig::cli::serve_config_from(vm);
    FUZZ_CHECK(cfg.timeout.count() > 0 && cfg.handshake_timeout.count() > 0);
    FUZZ_CHECK(cfg.max_incoming >= 1 && cfg.max_incoming <= 64 && cfg.max_handshakes >= 1);
    FUZZ_CHECK(!cfg.lv.runtime_dir.empty() && cfg.lv.runtime_dir[0] == '/');
  } catch (const po::error&) {
    // parse_options turns these into Error{usage}
  } catch (const hymig::Error& e) {
    FUZZ_CHECK(e.kind() == hymig::ErrorKind::usage);
  }
  return 0;
}
