#include "protocol/stop_point.hpp"

#include <signal.h>

#include <cstdlib>
#include <string>

namespace hymig {
namespace {

const std::string& wanted() {
  static const std::string w = [] {
    const char* v = std::getenv("HYMIG_STOP_AT");
    return std::string(v ? v : "");
  }();
  return w;
}

void stop_if(Role role, const std::string& point) {
  if (wanted() == std::string(to_string(role)) + ":" + point) ::raise(SIGSTOP);
}

}  // namespace

void stop_point(Role role, const char* point) {
  if (wanted().empty()) return;
  stop_if(role, point);
}

void stop_point(Role role, const char* point, std::uint32_t index) {
  if (wanted().empty()) return;
  stop_if(role, point + std::to_string(index));
}

}  // namespace hymig
