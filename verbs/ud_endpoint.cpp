#include "verbs/ud_endpoint.hpp"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <vector>

#include "core/error.hpp"
#include "verbs/device_discovery.hpp"

namespace hymig::verbs {

namespace {

[[noreturn]] void bad(std::string_view text, const std::string& why) {
  throw Error(ErrorKind::protocol, "malformed UD endpoint '" + std::string(text.substr(0, 120)) + "': " + why +
                                       " (expected GID/QPN/QKEY/MTU, e.g. ::ffff:10.9.0.1/17/0x5a3c19e2/1024)");
}

bool all_of(std::string_view s, int (*pred)(int)) {
  for (char c : s)
    if (!pred(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

std::string format_ud_endpoint(const UdEndpoint& e) {
  char tail[48];
  std::snprintf(tail, sizeof tail, "/%u/0x%08x/%u", e.qpn, e.qkey, e.mtu);
  return gid_to_text(e.gid) + tail;
}

UdEndpoint parse_ud_endpoint(std::string_view text) {
  std::vector<std::string_view> f;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = text.find('/', start);
    f.push_back(text.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
    if (f.size() > 4) break;
  }
  if (f.size() != 4) bad(text, "it has " + std::to_string(f.size()) + " '/'-separated fields, not 4");

  UdEndpoint e;
  const auto gid = gid_from_text(std::string(f[0]));
  if (!gid) bad(text, "GID '" + std::string(f[0]) + "' is neither IPv6 text nor 32 hex digits");
  if (*gid == std::array<std::uint8_t, 16>{}) bad(text, "GID is all zero");
  e.gid = *gid;

  if (f[1].empty() || f[1].size() > 8 || !all_of(f[1], ::isdigit)) bad(text, "QPN '" + std::string(f[1]) + "' is not a decimal number");
  std::from_chars(f[1].data(), f[1].data() + f[1].size(), e.qpn);
  if (e.qpn < 2 || e.qpn > 0xFFFFFF) bad(text, "QPN " + std::to_string(e.qpn) + " is outside 2..16777215");

  const std::string_view qk = f[2];
  if (qk.size() < 3 || qk.size() > 10 || qk[0] != '0' || (qk[1] != 'x' && qk[1] != 'X') || !all_of(qk.substr(2), ::isxdigit))
    bad(text, "QKEY '" + std::string(qk) + "' is not 0x and 1..8 hex digits");
  std::from_chars(qk.data() + 2, qk.data() + qk.size(), e.qkey, 16);

  if (f[3].empty() || f[3].size() > 4 || !all_of(f[3], ::isdigit)) bad(text, "MTU '" + std::string(f[3]) + "' is not a decimal number");
  std::from_chars(f[3].data(), f[3].data() + f[3].size(), e.mtu);
  if (!mtu_bytes_to_enum(e.mtu)) bad(text, "MTU " + std::to_string(e.mtu) + " is not one of 256, 512, 1024, 2048, 4096");
  return e;
}

}  // namespace hymig::verbs
