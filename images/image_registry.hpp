// The `--image` schemes: "synthetic:...", "file:PATH", "qmp:PATH". Each module that opens images
// adds its own scheme (name, help, a check that opens nothing, an opener); the composition root
// (runtime/image_schemes.hpp) adds them all, once, and `hymig migrate` both documents and opens
// `--image` through that one table.
//
// Registration is explicit, by a call per module (register_builtin_image_schemes in
// images/image_spec.hpp, vm::register_vm_image_schemes in vm/vm_image.hpp): a static initialiser
// that registered itself would be dropped with its object file by the static-library link when
// nothing else in that file is referenced.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "images/image.hpp"

namespace hymig {

struct ImageScheme {
  std::string name;  // "synthetic": the spec's text before its first ':'
  std::string help;  // the lines `hymig migrate --help` shows, ending in '\n'
  // Both take the text after the colon ("" when the spec has none). check validates it without
  // opening, mapping or allocating anything the spec names; both throw Error{usage} naming the field
  // that is wrong.
  std::function<void(const std::string& rest)> check;
  std::function<std::unique_ptr<SourceImage>(const std::string& rest)> open;
};

class ImageRegistry {
 public:
  // std::logic_error (a wiring mistake, not the user's) for a name already added, an empty name or
  // one holding ':', or a scheme without check or open.
  void add(ImageScheme scheme);

  // The scheme's check: Error{usage} for a bad spec, or for an unknown scheme (listing the known).
  void check(const std::string& spec) const;
  // check(spec), then the scheme's open.
  std::unique_ptr<SourceImage> open(const std::string& spec) const;
  // Every scheme's help, in the order they were added.
  std::string help() const;
  // The names, in the order they were added.
  std::vector<std::string> names() const;

 private:
  const ImageScheme& find(const std::string& spec, std::string& rest) const;

  std::vector<ImageScheme> schemes_;
};

}  // namespace hymig
