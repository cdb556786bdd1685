// A running QEMU reached through its QMP socket: run state, migration capabilities, the RAM
// backend's file, migration to and from a file descriptor hymig holds, and the end of the process.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/unique_fd.hpp"
#include "vm/process_handle.hpp"
#include "vm/qmp_client.hpp"

namespace hymig::vm {

// The memory backend that holds the guest's RAM (-object memory-backend-file,...).
struct RamBackend {
  std::string id;         // e.g. "pc.ram"
  std::string mem_path;   // the file (qom-get /objects/ID mem-path)
  std::uint64_t size = 0;
  bool shared = false;    // share=on: the file is the guest's memory, not a private copy
};

class QemuVm {
 public:
  // Attaches to the QEMU serving QMP at `qmp_path` (waits up to `timeout` for the socket).
  static QemuVm attach(const std::string& qmp_path, std::chrono::milliseconds timeout);
  // A QEMU reached another way (libvirt's monitor passthrough); `proc` may be empty.
  static QemuVm over(std::unique_ptr<QmpEndpoint> qmp, ProcessHandle proc = {});

  QmpEndpoint& qmp() { return *qmp_; }
  std::string where() const { return qmp_->where(); }
  const ProcessHandle& process() const { return process_; }

  std::string status();  // query-status: "running", "paused", "inmigrate", "postmigrate", ...
  std::string name();    // -name, or "" when none was given
  void stop();           // returns once every vCPU stopped
  void cont();
  void set_ignore_shared(bool on);  // the x-ignore-shared migration capability

  // The one memory backend; Error{usage} naming the fix when there is none or several, or when its
  // memory is not a shared file.
  RamBackend ram_backend();
  // Why QEMU would refuse to migrate now (query-migrate blocked-reasons); empty when it would not.
  std::vector<std::string> migration_blockers();

  nlohmann::json query_migrate();
  std::string migration_status();  // "" when no migration ran yet
  // Hands `fd` to QEMU (getfd NAME) and starts the outgoing migration into it (migrate fd:NAME).
  void migrate_to_fd(UniqueFd fd);
  // The same for an incoming migration (QEMU started with -incoming defer).
  void migrate_incoming_fd(UniqueFd fd);
  void migrate_cancel();
  // Polls query-migrate until the migration completed; throws Error{io} with QEMU's reason when it
  // failed or was cancelled, Error{timeout} after `timeout`.
  void wait_migration_completed(std::chrono::milliseconds timeout);

  // Asks QEMU to quit and waits until the process is gone; SIGKILL when it is still there after
  // `grace`. Never throws.
  void quit(std::chrono::milliseconds grace) noexcept;
  // SIGKILL (QMP quit when QEMU's pid is unknown) and wait. Never throws; false when it could not
  // be confirmed gone.
  bool kill() noexcept;

 private:
  QemuVm(std::unique_ptr<QmpEndpoint> qmp, ProcessHandle proc) : qmp_(std::move(qmp)), process_(std::move(proc)) {}
  bool wait_gone(std::chrono::milliseconds timeout) noexcept;
  nlohmann::json run(const std::string& command, const nlohmann::json& args = nullptr);
  std::unique_ptr<QmpEndpoint> qmp_;
  ProcessHandle process_;
};

// True for query-migrate statuses of a migration still under way.
bool migration_active(const std::string& status);

}  // namespace hymig::vm
