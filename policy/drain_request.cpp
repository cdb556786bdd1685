#include "policy/drain_request.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "protocol/wire.hpp"

namespace hymig {
namespace {

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorKind::protocol, "drain request: " + what); }

// A value from the request as one command-line argument: never an option of its own.
std::string plain_text(const nlohmann::json& v, const char* key) {
  if (!v.is_string()) bad(std::string("'") + key + "' must be a string");
  const std::string s = v.get<std::string>();
  if (s.empty() || s.size() > 256 || s[0] == '-' || !is_printable_text(s) || s.find_first_of(" ,") != std::string::npos)
    bad(std::string("'") + key + "' is not a plain value");
  return s;
}

std::string number(const nlohmann::json& v, const char* key, double min, double max) {
  if (!v.is_number()) bad(std::string("'") + key + "' must be a number");
  const double d = v.get<double>();
  if (!(d >= min && d <= max)) bad(fmt::format("'{}' must be {}..{}", key, min, max));
  return fmt::format("{}", d);
}

}  // namespace

std::vector<std::string> drain_command_line(const std::string& hymig, const std::string& key_file,
                                            const std::string& connect, const nlohmann::json& args) {
  if (!args.is_object()) bad("arguments must be an object");
  std::vector<std::string> argv = {hymig, "drain", "--report", "json", "--progress", "json", "--key-file", key_file};
  if (!connect.empty()) argv.insert(argv.end(), {"--connect", connect});
  bool targets = false;
  for (const auto& [key, v] : args.items()) {
    if (key == "targets") {
      if (!v.is_array() || v.empty() || v.size() > 256) bad("'targets' must be a list of 1..256 HOST:PORT");
      std::string list;
      for (const auto& t : v) list += (list.empty() ? "" : ",") + plain_text(t, "targets");
      argv.insert(argv.end(), {"--targets", list});
      targets = true;
    } else if (key == "parallel") {
      argv.insert(argv.end(), {"--parallel", number(v, "parallel", 1, 16)});
    } else if (key == "retries") {
      argv.insert(argv.end(), {"--retries", number(v, "retries", 0, 10)});
    } else if (key == "retry_delay") {
      argv.insert(argv.end(), {"--retry-delay", number(v, "retry_delay", 0, 3600)});
    } else if (key == "completion_timeout_per_gib") {
      argv.insert(argv.end(), {"--completion-timeout-per-gib", number(v, key.c_str(), 1, 86400)});
    } else if (key == "progress_timeout") {
      argv.insert(argv.end(), {"--progress-timeout", number(v, key.c_str(), 1, 86400)});
    } else if (key == "timeout") {
      argv.insert(argv.end(), {"--timeout", number(v, key.c_str(), 0.1, 3600)});
    } else if (key == "bandwidth" || key == "total_bandwidth" || key == "headroom") {
      argv.insert(argv.end(), {key == "bandwidth" ? "--bandwidth" : key == "headroom" ? "--headroom" : "--total-bandwidth",
                               plain_text(v, key.c_str())});
    } else if (key == "fallback") {
      const std::string f = plain_text(v, "fallback");
      if (f != "none" && f != "native") bad("'fallback' must be none or native");
      argv.insert(argv.end(), {"--fallback", f});
    } else if (key == "dry_run") {
      if (!v.is_boolean()) bad("'dry_run' must be true or false");
      if (v.get<bool>()) argv.push_back("--dry-run");
    } else {
      bad("unknown argument '" + printable(key, 64) + "'");
    }
  }
  if (!targets) bad("no targets");
  return argv;
}

}  // namespace hymig
