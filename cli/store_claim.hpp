// The daemon's hold on its store: one `hymig serve` per store directory (an exclusive flock on the
// directory itself, held for the daemon's life), and the partial images (.NAME.SESSION.part) a
// daemon that died mid-session left behind removed at start: no other daemon can be writing them.
#pragma once

#include <string>
#include <vector>

#include "transport/unique_fd.hpp"

namespace hymig::cli {

struct StoreClaim {
  UniqueFd lock;                     // the store directory, flock'ed; invalid when it could not be made
  std::vector<std::string> removed;  // stale partial images removed
};

// Creates `dir` if missing. Error{usage} when another daemon holds it; Error{io} when it exists
// but cannot be opened or cleaned. A store that cannot be created (no permission: a daemon that
// receives only VMs) is not an error here: file images fail later, saying why.
StoreClaim claim_store(const std::string& dir);

// True for the names FileTarget gives partial images: "." NAME "." 16 hex digits ".part".
bool is_partial_image_name(const std::string& name);

}  // namespace hymig::cli
