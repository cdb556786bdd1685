// The built-in --image schemes: "synthetic:size=1G,dirty-rate=256M,working-set=1G,seed=7" and
// "file:/dev/shm/guest.ram,pause-pid=1234" (the VM schemes are vm/'s, in vm/vm_image.hpp).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "images/image.hpp"
#include "images/image_registry.hpp"
#include "images/synthetic_image.hpp"

namespace hymig {

struct FileImageSpec {
  std::string path;
  std::optional<pid_t> pause_pid;
};
using ImageSpec = std::variant<SyntheticSpec, FileImageSpec>;

// Only the text of a synthetic: or file: spec: opens nothing, allocates nothing the spec asks
// for. Error{usage} naming the field that is wrong (or the kind, when it is neither).
ImageSpec parse_image_spec(const std::string& spec);

// Adds the synthetic and file schemes (their check is parse_image_spec's).
void register_builtin_image_schemes(ImageRegistry& registry);

}  // namespace hymig
