// Waiting for a socket with a deadline: the one place that turns a timeout into ppoll().
#pragma once

#include <poll.h>

#include <chrono>

namespace hymig {

// Waits until `fd` reports any of `events` (or an error/hang-up, which the next system call will
// explain) or `timeout` passes. Returns false on timeout. Restarts after signals with the time left.
// A timeout <= 0 only checks the current state.
bool wait_fd(int fd, short events, std::chrono::nanoseconds timeout);

}  // namespace hymig
