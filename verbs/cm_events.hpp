// rdma_cm event channels without blocking calls: every event is copied (type, status, ids, private
// data) and acknowledged at once, so rdma_destroy_id never waits for an unacknowledged event and
// the caller never holds librdmacm memory.
#pragma once

#include <rdma/rdma_cma.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

struct CmEvent {
  rdma_cm_event_type type{};
  int status = 0;
  rdma_cm_id* id = nullptr;         // for CONNECT_REQUEST: the new connection's id (caller owns it)
  rdma_cm_id* listen_id = nullptr;
  std::vector<std::byte> private_data;
};

// A new event channel with a non-blocking descriptor. Throws Error{io} with a hint when the RDMA
// connection manager is missing ("load rdma_ucm").
EventChannelPtr make_event_channel(const std::string& purpose);

// The next event if one is pending; never blocks. Throws Error{io} if reading the channel fails.
std::optional<CmEvent> poll_cm_event(rdma_event_channel* channel);

// Waits up to `timeout` for the next event; std::nullopt on timeout.
std::optional<CmEvent> wait_cm_event(rdma_event_channel* channel, std::chrono::nanoseconds timeout);

// "RDMA_CM_EVENT_REJECTED (status 8)" for messages.
std::string describe(const CmEvent& event);

}  // namespace hymig::verbs
