// Comparing the numeric addresses peers give (the control connection's peer, a datagram endpoint's
// host): the source sends its stream only to the host it authenticated.
#pragma once

#include <string_view>

namespace hymig {

// True when both are numeric IP addresses (brackets allowed) and the same one: an IPv4-mapped IPv6
// address equals its IPv4 form. Anything that is not a numeric address is never the same.
bool same_numeric_host(std::string_view a, std::string_view b);

}  // namespace hymig
