// The composition root of `--image`: every scheme hymig opens (images/'s synthetic and file, vm/'s
// qmp), registered once, in the order `hymig migrate --help` lists them.
#pragma once

#include "images/image_registry.hpp"

namespace hymig::runtime {

const ImageRegistry& image_schemes();

}  // namespace hymig::runtime
