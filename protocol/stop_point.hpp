// A test hook for the fault matrix (docs/operations.md, "Faults"; tests/integration/fault_matrix.sh):
// with HYMIG_STOP_AT=ROLE:POINT in its environment, the process stops itself (SIGSTOP: every
// thread) when it reaches POINT as ROLE, so a test can apply a fault at exactly that moment, then
// continue it (SIGCONT) or kill it. Points: connect (before the TLS handshake), notify (source:
// notify sent), ready (destination: ready sent), roundN (round N begun), final-delta (paused, the
// delta about to stream), verify (digest sent / received), device-state (source: about to send
// it), commit (source: commit sent; destination: commit received, not acted on), committed
// (destination: committed, the answer not yet sent). Without the variable it costs one test of a
// flag read once.
#pragma once

#include <cstdint>

#include "security/session_secrets.hpp"

namespace hymig {

void stop_point(Role role, const char* point);
void stop_point(Role role, const char* point, std::uint32_t index);  // "round" + index

}  // namespace hymig
