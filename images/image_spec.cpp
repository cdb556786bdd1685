#include "images/image_spec.hpp"

#include <charconv>
#include <map>

#include "core/error.hpp"
#include "core/units.hpp"
#include "images/file_image.hpp"
#include "images/synthetic_image.hpp"
#include "protocol/wire.hpp"

namespace hymig {
namespace {

[[noreturn]] void bad(const std::string& msg) { throw Error(ErrorKind::usage, "--image: " + msg); }

std::map<std::string, std::string> parse_options(const std::string& text, const std::string& kind,
                                                 std::initializer_list<const char*> allowed) {
  std::map<std::string, std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) bad("'" + item + "' is not KEY=VALUE in the " + kind + " spec");
    const std::string key = item.substr(0, eq);
    bool known = false;
    std::string valid;
    for (auto* a : allowed) {
      known |= key == a;
      valid += std::string(valid.empty() ? "" : ", ") + a;
    }
    if (!known) bad("unknown key '" + key + "' for a " + kind + " image (valid: " + valid + ")");
    out[key] = item.substr(eq + 1);
  }
  return out;
}

std::uint64_t parse_uint(const std::string& v, const std::string& what) {
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) bad(what + ": '" + v + "' is not a whole number");
  return n;
}

double parse_fraction(const std::string& text, const char* what) {
  double v = 0;
  try {
    std::size_t used = 0;
    v = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    bad(std::string(what) + ": '" + text + "' is not a number");
  }
  if (!(v >= 0 && v <= 1)) bad(std::string(what) + " must be between 0 and 1");
  return v;
}

SyntheticSpec parse_synthetic(const std::string& rest) {
  const auto o = parse_options(
      rest, "synthetic", {"size", "dirty-rate", "working-set", "seed", "zero-fraction", "compressible", "writers"});
  SyntheticSpec s;
  if (o.count("size")) s.size = parse_size(o.at("size"), "synthetic size");
  if (o.count("dirty-rate")) s.dirty_rate = parse_rate(o.at("dirty-rate"), "synthetic dirty-rate");
  if (o.count("working-set")) s.working_set = parse_size(o.at("working-set"), "synthetic working-set");
  if (o.count("seed")) s.seed = parse_uint(o.at("seed"), "seed");
  if (o.count("writers"))
    s.writers = static_cast<unsigned>(std::min<std::uint64_t>(64, parse_uint(o.at("writers"), "writers")));
  if (o.count("zero-fraction")) s.zero_fraction = parse_fraction(o.at("zero-fraction"), "zero-fraction");
  if (o.count("compressible")) s.compressible = parse_fraction(o.at("compressible"), "compressible");
  return s;
}

FileImageSpec parse_file(const std::string& rest) {
  const auto comma = rest.find(',');
  FileImageSpec f;
  f.path = rest.substr(0, comma);
  if (f.path.empty()) bad("file: needs a path, e.g. file:/dev/shm/guest.ram");
  const auto o = parse_options(comma == std::string::npos ? "" : rest.substr(comma + 1), "file", {"pause-pid"});
  if (o.count("pause-pid")) {
    const std::uint64_t pid = parse_uint(o.at("pause-pid"), "pause-pid");
    // A pid_t is positive and 31 bits: 0 or a wrapped value would signal a whole process group.
    if (pid == 0 || pid > 0x7fffffff) bad("pause-pid: '" + o.at("pause-pid") + "' is not a process id");
    f.pause_pid = static_cast<pid_t>(pid);
  }
  return f;
}

}  // namespace

ImageSpec parse_image_spec(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (kind == "synthetic") return parse_synthetic(rest);
  if (kind == "file") return parse_file(rest);
  bad("unknown image kind '" + kind + "' in '" + printable(spec, 200) + "'; expected synthetic:... or file:PATH");
}

void register_builtin_image_schemes(ImageRegistry& registry) {
  registry.add(
      {"synthetic",
       "  synthetic:size=S[,dirty-rate=R][,working-set=W][,seed=N][,zero-fraction=F][,compressible=C][,writers=N]\n"
       "      in-process memory of S bytes (default 1G) filled with seeded random pages (a share F\n"
       "      left zero; with C, that share of each page's bytes a repeated pattern, so it compresses\n"
       "      to about 1-C); writer threads dirty random pages of the first W bytes at R bytes/s\n",
       [](const std::string& rest) { parse_synthetic(rest); },
       [](const std::string& rest) -> std::unique_ptr<SourceImage> {
         return std::make_unique<SyntheticImage>(parse_synthetic(rest));
       }});
  registry.add({"file",
                "  file:PATH[,pause-pid=PID]\n"
                "      an existing file (e.g. /dev/shm/guest.ram), size a multiple of 4 KiB; modified\n"
                "      pages are found by hashing. PID (the writer) is stopped at pause, continued on\n"
                "      failure and killed once the destination committed\n",
                [](const std::string& rest) { parse_file(rest); },
                [](const std::string& rest) -> std::unique_ptr<SourceImage> {
                  const FileImageSpec f = parse_file(rest);
                  return std::make_unique<FileImage>(f.path, f.pause_pid);
                }});
}

}  // namespace hymig
