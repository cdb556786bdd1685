// Parses --image specs: "synthetic:size=1G,dirty-rate=256M,working-set=1G,seed=7" and
// "file:/dev/shm/guest.ram,pause-pid=1234".
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "images/image.hpp"
#include "images/synthetic_image.hpp"

namespace hymig {

struct FileImageSpec {
  std::string path;
  std::optional<pid_t> pause_pid;
};
using ImageSpec = std::variant<SyntheticSpec, FileImageSpec>;

// Only the text: opens nothing, allocates nothing the spec asks for. Error{usage} naming the
// field that is wrong.
ImageSpec parse_image_spec(const std::string& spec);

std::unique_ptr<SourceImage> open_source_image(const std::string& spec);

// The text `hymig migrate --help` shows for --image.
const char* image_spec_help();

}  // namespace hymig
