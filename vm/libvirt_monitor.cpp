#include "vm/libvirt_monitor.hpp"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdlib>

#include "core/error.hpp"
#include "vm/qmp_client.hpp"

namespace hymig::vm {

std::string LibvirtMonitor::where() const { return "domain '" + dom_.name() + "' (" + dom_.connection_uri() + ")"; }

nlohmann::json LibvirtMonitor::execute(const std::string& command, const nlohmann::json& args, std::chrono::milliseconds) {
  return run(command, args, -1);
}

nlohmann::json LibvirtMonitor::execute_with_fd(const std::string& command, const nlohmann::json& args, int fd) {
  return run(command, args, fd);
}

nlohmann::json LibvirtMonitor::run(const std::string& command, const nlohmann::json& args, int fd) {
  nlohmann::json msg = {{"execute", command}};
  if (!args.is_null()) msg["arguments"] = args;
  const std::string text = msg.dump();
  char* result = nullptr;
  int fds[1] = {fd};
  const int r = virDomainQemuMonitorCommandWithFiles(dom_.get(), text.c_str(), fd >= 0 ? 1 : 0, fd >= 0 ? fds : nullptr,
                                                     nullptr, nullptr, &result, 0);
  if (r != 0) {
    const char* m = virGetLastErrorMessage();
    const int code = virGetLastErrorCode();
    // A domain that stopped running has no monitor any more: QEMU is gone.
    throw Error(code == VIR_ERR_OPERATION_INVALID ? ErrorKind::peer_vanished : ErrorKind::io,
                "libvirt could not pass " + command + " to " + where() + ": " + (m ? m : "unknown libvirt error"));
  }
  const std::string reply = result ? result : "";
  std::free(result);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(reply);
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorKind::protocol, "libvirt returned no JSON for " + command + ": " + reply.substr(0, 200));
  }
  return qmp_return(command, j);
}

}  // namespace hymig::vm
