// Where a QemuVm's QMP commands go: QEMU's own monitor socket (QmpClient, plain QEMU) or libvirt's
// monitor passthrough (LibvirtMonitor, a domain whose monitor libvirt holds).
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

namespace hymig::vm {

class QmpEndpoint {
 public:
  virtual ~QmpEndpoint() = default;

  // Runs `command` with `args` (an object, or null for none) and returns its "return" value.
  // Throws QmpError when QEMU answers with an error, Error{timeout} after `timeout`,
  // Error{peer_vanished} when QEMU is gone.
  virtual nlohmann::json execute(const std::string& command, const nlohmann::json& args,
                                 std::chrono::milliseconds timeout) = 0;
  // The same, passing `fd` with the command (QEMU keeps a duplicate): getfd.
  virtual nlohmann::json execute_with_fd(const std::string& command, const nlohmann::json& args, int fd) = 0;

  // Waits up to `timeout` for QEMU to close the monitor (it exited); false if it did not, or when
  // this endpoint cannot tell.
  virtual bool wait_closed(std::chrono::milliseconds timeout) = 0;

  // For messages: "the QEMU at /run/x.qmp", "domain 'vm1' (qemu:///system)".
  virtual std::string where() const = 0;
};

}  // namespace hymig::vm
