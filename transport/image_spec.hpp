// Parses --image specs: "synthetic:size=1G,dirty-rate=256M,working-set=1G,seed=7" and
// "file:/dev/shm/guest.ram,pause-pid=1234".
#pragma once

#include <memory>
#include <string>

#include "transport/image.hpp"

namespace hymig {

std::unique_ptr<SourceImage> open_source_image(const std::string& spec);

// The text `hymig migrate --help` shows for --image.
const char* image_spec_help();

}  // namespace hymig
