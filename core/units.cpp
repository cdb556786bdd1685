#include "core/units.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"

namespace hymig {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

[[noreturn]] void bad(std::string_view what, std::string_view text, const char* expect) {
  throw Error(ErrorKind::usage, std::string(what) + ": cannot read '" + std::string(text) + "' (" + expect + ")");
}

// Splits "1.5gbit" into 1.5 and "gbit".
bool split_number(std::string_view text, double& value, std::string& unit) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return false;
  const std::string num(text.substr(0, i));
  char* end = nullptr;
  value = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size() || !std::isfinite(value)) return false;
  unit = lower(text.substr(i));
  return true;
}

}  // namespace

std::uint64_t parse_size(std::string_view text, std::string_view what) {
  const char* expect = "a size like 4096, 64K, 256M, 1G or 2T";
  double v;
  std::string unit;
  if (!split_number(text, v, unit)) bad(what, text, expect);
  double mult;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else bad(what, text, expect);
  const double bytes = v * mult;
  if (bytes > 1.8e19) bad(what, text, "too large");
  return static_cast<std::uint64_t>(std::llround(bytes));
}

std::uint64_t parse_rate(std::string_view text, std::string_view what) {
  const char* expect = "bytes/s like 256M or 1G, or bits/s like 500mbit or 10gbit";
  double v;
  std::string unit;
  if (!split_number(text, v, unit)) bad(what, text, expect);
  double bits_mult = 0;
  if (unit == "bit") bits_mult = 1;
  else if (unit == "kbit") bits_mult = 1e3;
  else if (unit == "mbit") bits_mult = 1e6;
  else if (unit == "gbit") bits_mult = 1e9;
  if (bits_mult > 0) return static_cast<std::uint64_t>(v * bits_mult / 8);
  for (auto suffix : {"/s", "ps"}) {
    if (unit.size() > 2 && unit.ends_with(suffix)) unit.resize(unit.size() - 2);
  }
  return parse_size(std::to_string(v) + unit, what);
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string format_timeout(std::chrono::milliseconds t) {
  if (t.count() % 1000 == 0) return std::to_string(t.count() / 1000) + " s";
  return std::to_string(t.count()) + " ms";
}

}  // namespace hymig
