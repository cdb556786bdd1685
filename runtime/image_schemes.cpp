#include "runtime/image_schemes.hpp"

#include "images/image_spec.hpp"
#include "vm/vm_image.hpp"

namespace hymig::runtime {

const ImageRegistry& image_schemes() {
  static const ImageRegistry registry = [] {
    ImageRegistry r;
    register_builtin_image_schemes(r);
    vm::register_vm_image_schemes(r);
    return r;
  }();
  return registry;
}

}  // namespace hymig::runtime
