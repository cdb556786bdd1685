// One RDMA device's context and protection domain, shared by the queue pairs of one session: its
// UD lanes and its RC channel, as UCX keeps one memory domain per device. Memory registered
// through it is registered once, however many queue pairs use it, and RLIMIT_MEMLOCK counts it
// once.
//
// Per session, never per process: a peer may RDMA-WRITE into any memory its QP's PD registered
// for remote access, so two sessions (two sources, in one daemon) never share a PD.
//
// The context is the one librdmacm opened for the device (rdma_get_devices), so an RC cm_id's QP
// can use the same PD; where librdmacm cannot start (no rdma_cm module), UD opens the device itself.
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <tuple>

#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

class VerbsDomain : public std::enable_shared_from_this<VerbsDomain> {
 public:
  // The device an RC cm_id resolved to (id->verbs, librdmacm's context).
  static std::shared_ptr<VerbsDomain> of_context(ibv_context* context);
  // The device named `device` (UD). Error{io} if it cannot be opened.
  static std::shared_ptr<VerbsDomain> of_device(const std::string& device);

  ~VerbsDomain();
  VerbsDomain(const VerbsDomain&) = delete;
  VerbsDomain& operator=(const VerbsDomain&) = delete;

  ibv_context* context() const { return context_; }
  ibv_pd* pd() const { return pd_.get(); }
  const std::string& name() const { return name_; }

  // A registration of exactly `region`, with `access` or else `fallback` (a read-only mapping
  // refuses local write access), shared with every holder of the same region and access; it is
  // released when the last holder drops it. Null, errno set, when the kernel refuses both.
  std::shared_ptr<ibv_mr> register_region(std::span<const std::byte> region, int access, int fallback);

 private:
  VerbsDomain(ibv_context* context, ibv_context** cm_devices, ContextPtr owned);

  ibv_context** cm_devices_ = nullptr;  // librdmacm's device array, held while the domain lives
  ContextPtr owned_;                    // set only when this domain opened the device itself
  ibv_context* context_ = nullptr;
  std::string name_;
  PdPtr pd_;
  std::mutex mutex_;
  std::map<std::tuple<const std::byte*, std::size_t, int>, std::weak_ptr<ibv_mr>> registrations_;
};

// The devices of one session: the first queue pair on a device opens its domain, the others share
// it while any of them lives.
class DeviceScope {
 public:
  std::shared_ptr<VerbsDomain> of_context(ibv_context* context);
  std::shared_ptr<VerbsDomain> of_device(const std::string& device);

 private:
  std::mutex mutex_;
  std::map<std::string, std::weak_ptr<VerbsDomain>> domains_;  // by device name
};

// `scope` if given, else a domain of the queue pair's own.
std::shared_ptr<VerbsDomain> domain_of_context(DeviceScope* scope, ibv_context* context);
std::shared_ptr<VerbsDomain> domain_of_device(DeviceScope* scope, const std::string& device);

}  // namespace hymig::verbs
