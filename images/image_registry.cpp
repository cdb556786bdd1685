#include "images/image_registry.hpp"

#include <stdexcept>

#include "core/error.hpp"
#include "protocol/wire.hpp"

namespace hymig {

void ImageRegistry::add(ImageScheme scheme) {
  if (scheme.name.empty() || scheme.name.find(':') != std::string::npos)
    throw std::logic_error("image scheme name '" + scheme.name + "' must be non-empty and without ':'");
  if (!scheme.check || !scheme.open) throw std::logic_error("image scheme '" + scheme.name + "' lacks check or open");
  for (const auto& s : schemes_)
    if (s.name == scheme.name) throw std::logic_error("image scheme '" + scheme.name + "' is registered twice");
  schemes_.push_back(std::move(scheme));
}

const ImageScheme& ImageRegistry::find(const std::string& spec, std::string& rest) const {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  for (const auto& s : schemes_) {
    if (s.name != kind) continue;
    rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
    return s;
  }
  std::string expected;
  for (std::size_t i = 0; i < schemes_.size(); ++i)
    expected += (i == 0 ? "" : i + 1 == schemes_.size() ? " or " : ", ") + schemes_[i].name + ":...";
  if (expected.empty()) expected = "nothing (no image scheme is registered)";
  throw Error(ErrorKind::usage, "--image: unknown image kind '" + printable(kind, 200) + "' in '" +
                                    printable(spec, 200) + "'; expected " + expected);
}

void ImageRegistry::check(const std::string& spec) const {
  std::string rest;
  find(spec, rest).check(rest);
}

std::unique_ptr<SourceImage> ImageRegistry::open(const std::string& spec) const {
  std::string rest;
  const ImageScheme& s = find(spec, rest);
  s.check(rest);
  return s.open(rest);
}

std::string ImageRegistry::help() const {
  std::string out;
  for (const auto& s : schemes_) out += s.help;
  return out;
}

std::vector<std::string> ImageRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& s : schemes_) out.push_back(s.name);
  return out;
}

}  // namespace hymig
