// QMP through libvirt's monitor passthrough (virDomainQemuMonitorCommandWithFiles): the QEMU of a
// libvirt domain, whose own monitor socket libvirt holds. libvirt marks the domain tainted
// ("custom-monitor") the first time; it changes nothing else.
#pragma once

#include "vm/libvirt_domain.hpp"
#include "vm/qmp_endpoint.hpp"

namespace hymig::vm {

class LibvirtMonitor final : public QmpEndpoint {
 public:
  explicit LibvirtMonitor(LibvirtDomain dom) : dom_(std::move(dom)) {}

  // `timeout` is libvirt's: it waits for the monitor on its own terms.
  nlohmann::json execute(const std::string& command, const nlohmann::json& args, std::chrono::milliseconds timeout) override;
  nlohmann::json execute_with_fd(const std::string& command, const nlohmann::json& args, int fd) override;
  bool wait_closed(std::chrono::milliseconds) override { return false; }  // libvirt's to know; ask the domain
  std::string where() const override;

 private:
  nlohmann::json run(const std::string& command, const nlohmann::json& args, int fd);
  LibvirtDomain dom_;
};

}  // namespace hymig::vm
