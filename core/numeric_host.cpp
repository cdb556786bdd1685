#include "core/numeric_host.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <string>

namespace hymig {
namespace {

bool parse(std::string_view text, in6_addr& out) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  const std::string t(text);
  in_addr v4{};
  if (::inet_pton(AF_INET, t.c_str(), &v4) == 1) {
    out = in6_addr{};
    out.s6_addr[10] = out.s6_addr[11] = 0xff;
    std::memcpy(&out.s6_addr[12], &v4, 4);
    return true;
  }
  return ::inet_pton(AF_INET6, t.c_str(), &out) == 1;
}

}  // namespace

bool same_numeric_host(std::string_view a, std::string_view b) {
  in6_addr x{}, y{};
  return parse(a, x) && parse(b, y) && std::memcmp(&x, &y, sizeof x) == 0;
}

}  // namespace hymig
