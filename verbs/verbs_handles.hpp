// RAII owners for every rdma-core object this backend makes: one unique_ptr alias per type, so a
// failure half-way through setting a channel up releases what was made, in reverse order.
//
// Teardown order matters to the device, and a class that owns several of these declares them so
// that C++'s reverse destruction order matches it (first declared = last destroyed):
//   context (or cm_id), PD, memory, MRs, CQs, AH, QP  ->  destroyed QP, AH, CQs, MRs, memory, PD, context
// A CQ's completion channel lives in its CompletionQueue and goes right after the CQ (ibv requires
// only "after"). Before any member is destroyed, the owner's destructor moves the QP to ERR and
// drains what is outstanding (a CQ cannot be destroyed while completion events are unacknowledged:
// completion_queue.hpp acks them itself).
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace hymig::verbs {

struct DeviceListDeleter {
  void operator()(ibv_device** p) const noexcept { ibv_free_device_list(p); }
};
struct ContextDeleter {
  void operator()(ibv_context* p) const noexcept { ibv_close_device(p); }
};
struct PdDeleter {
  void operator()(ibv_pd* p) const noexcept { ibv_dealloc_pd(p); }
};
struct CompChannelDeleter {
  void operator()(ibv_comp_channel* p) const noexcept { ibv_destroy_comp_channel(p); }
};
struct CqDeleter {
  void operator()(ibv_cq* p) const noexcept { ibv_destroy_cq(p); }
};
struct QpDeleter {
  void operator()(ibv_qp* p) const noexcept { ibv_destroy_qp(p); }
};
struct MrDeleter {
  void operator()(ibv_mr* p) const noexcept { ibv_dereg_mr(p); }
};
struct AhDeleter {
  void operator()(ibv_ah* p) const noexcept { ibv_destroy_ah(p); }
};
struct EventChannelDeleter {
  void operator()(rdma_event_channel* p) const noexcept { rdma_destroy_event_channel(p); }
};
// rdma_destroy_id waits until every event of the id is acknowledged: cm_events.hpp acks each event
// as soon as it has copied what it needs, so this never blocks.
struct CmIdDeleter {
  void operator()(rdma_cm_id* p) const noexcept { rdma_destroy_id(p); }
};

using DeviceListPtr = std::unique_ptr<ibv_device*, DeviceListDeleter>;
using ContextPtr = std::unique_ptr<ibv_context, ContextDeleter>;
using PdPtr = std::unique_ptr<ibv_pd, PdDeleter>;
using CompChannelPtr = std::unique_ptr<ibv_comp_channel, CompChannelDeleter>;
using CqPtr = std::unique_ptr<ibv_cq, CqDeleter>;
using QpPtr = std::unique_ptr<ibv_qp, QpDeleter>;
using MrPtr = std::unique_ptr<ibv_mr, MrDeleter>;
using AhPtr = std::unique_ptr<ibv_ah, AhDeleter>;
using EventChannelPtr = std::unique_ptr<rdma_event_channel, EventChannelDeleter>;
using CmIdPtr = std::unique_ptr<rdma_cm_id, CmIdDeleter>;

// A QP made by rdma_create_qp belongs to its cm_id (id->qp) and is destroyed through it.
class CmQp {
 public:
  CmQp() = default;
  explicit CmQp(rdma_cm_id* id) : id_(id) {}
  CmQp(CmQp&& o) noexcept : id_(o.id_) { o.id_ = nullptr; }
  CmQp& operator=(CmQp&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = nullptr;
    }
    return *this;
  }
  CmQp(const CmQp&) = delete;
  CmQp& operator=(const CmQp&) = delete;
  ~CmQp() { reset(); }

  ibv_qp* get() const { return id_ ? id_->qp : nullptr; }
  void reset() {
    if (id_ && id_->qp) rdma_destroy_qp(id_);
    id_ = nullptr;
  }

 private:
  rdma_cm_id* id_ = nullptr;
};

// Page-aligned memory for registered pools (send slots, receive buffers, credit words).
struct FreeDeleter {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
using AlignedBytes = std::unique_ptr<std::byte[], FreeDeleter>;

// Zero-filled, 4 KiB aligned; `bytes` is rounded up to the alignment. Throws std::bad_alloc.
AlignedBytes allocate_aligned(std::size_t bytes);

}  // namespace hymig::verbs
