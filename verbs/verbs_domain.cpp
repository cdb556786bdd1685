#include "verbs/verbs_domain.hpp"

#include <cerrno>
#include <utility>

#include "core/error.hpp"
#include "verbs/device_discovery.hpp"

namespace hymig::verbs {

namespace {

struct CmDevices {
  ibv_context** list = nullptr;
  int count = 0;
  CmDevices() { list = rdma_get_devices(&count); }
  ~CmDevices() {
    if (list) rdma_free_devices(list);
  }
  CmDevices(const CmDevices&) = delete;
  CmDevices& operator=(const CmDevices&) = delete;
  ibv_context** release() { return std::exchange(list, nullptr); }
};

}  // namespace

VerbsDomain::VerbsDomain(ibv_context* context, ibv_context** cm_devices, ContextPtr owned)
    : cm_devices_(cm_devices),
      owned_(std::move(owned)),
      context_(context),
      name_(ibv_get_device_name(context->device)) {
  pd_.reset(ibv_alloc_pd(context_));
  if (!pd_) {
    const int e = errno;
    if (cm_devices_) rdma_free_devices(cm_devices_);
    throw_errno("cannot allocate a protection domain on RDMA device " + name_, e);
  }
}

VerbsDomain::~VerbsDomain() {
  pd_.reset();  // before the device array or the context it belongs to
  if (cm_devices_) rdma_free_devices(cm_devices_);
}

std::shared_ptr<VerbsDomain> VerbsDomain::of_context(ibv_context* context) {
  CmDevices devices;  // holds librdmacm's contexts open as long as the domain lives
  return std::shared_ptr<VerbsDomain>(new VerbsDomain(context, devices.release(), nullptr));
}

std::shared_ptr<VerbsDomain> VerbsDomain::of_device(const std::string& device) {
  CmDevices devices;
  for (int i = 0; devices.list && i < devices.count; ++i)
    if (device == ibv_get_device_name(devices.list[i]->device)) {
      ibv_context* context = devices.list[i];
      return std::shared_ptr<VerbsDomain>(new VerbsDomain(context, devices.release(), nullptr));
    }
  // librdmacm cannot start or does not list it: open the device ourselves.
  ContextPtr owned = open_device(device);
  ibv_context* context = owned.get();
  return std::shared_ptr<VerbsDomain>(new VerbsDomain(context, nullptr, std::move(owned)));
}

std::shared_ptr<ibv_mr> VerbsDomain::register_region(std::span<const std::byte> region, int access, int fallback) {
  const std::lock_guard lock(mutex_);
  std::erase_if(registrations_, [](const auto& r) { return r.second.expired(); });
  auto& slot = registrations_[{region.data(), region.size(), access}];
  if (auto live = slot.lock()) return live;
  void* base = const_cast<std::byte*>(region.data());
  ibv_mr* mr = ibv_reg_mr(pd_.get(), base, region.size(), access);
  if (!mr && fallback != access) mr = ibv_reg_mr(pd_.get(), base, region.size(), fallback);
  if (!mr) return nullptr;
  // The registration keeps the domain (its PD) alive until it is released, and no longer: the
  // deleter lives on with the weak entry above, so it lets go of the domain once it has run.
  std::shared_ptr<ibv_mr> shared(mr, [self = shared_from_this()](ibv_mr* m) mutable {
    ibv_dereg_mr(m);
    self.reset();
  });
  slot = shared;
  return shared;
}

std::shared_ptr<VerbsDomain> DeviceScope::of_context(ibv_context* context) {
  const std::string name = ibv_get_device_name(context->device);
  const std::lock_guard lock(mutex_);
  std::weak_ptr<VerbsDomain>& slot = domains_[name];
  if (auto live = slot.lock(); live && live->context() == context) return live;
  auto d = VerbsDomain::of_context(context);
  if (slot.expired()) slot = d;
  return d;
}

std::shared_ptr<VerbsDomain> DeviceScope::of_device(const std::string& device) {
  const std::lock_guard lock(mutex_);
  std::weak_ptr<VerbsDomain>& slot = domains_[device];
  if (auto live = slot.lock()) return live;
  auto d = VerbsDomain::of_device(device);
  slot = d;
  return d;
}

std::shared_ptr<VerbsDomain> domain_of_context(DeviceScope* scope, ibv_context* context) {
  return scope ? scope->of_context(context) : VerbsDomain::of_context(context);
}

std::shared_ptr<VerbsDomain> domain_of_device(DeviceScope* scope, const std::string& device) {
  return scope ? scope->of_device(device) : VerbsDomain::of_device(device);
}

}  // namespace hymig::verbs
