#include "core/fd_wait.hpp"

#include <cerrno>
#include <ctime>

#include "core/error.hpp"

namespace hymig {

bool wait_fd(int fd, short events, std::chrono::nanoseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - clock::now());
    if (left.count() < 0) left = std::chrono::nanoseconds::zero();
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
    pollfd p{fd, events, 0};
    const int rc = ::ppoll(&p, 1, &ts, nullptr);
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) throw_errno("poll on socket " + std::to_string(fd));
  }
}

}  // namespace hymig
