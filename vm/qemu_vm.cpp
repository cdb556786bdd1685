#include "vm/qemu_vm.hpp"

#include <signal.h>

#include <thread>

#include "core/error.hpp"

namespace hymig::vm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kFdName = "hymig-migration";
constexpr std::chrono::milliseconds kCommandTimeout{10000};

}  // namespace

bool migration_active(const std::string& s) {
  return !s.empty() && s != "none" && s != "completed" && s != "failed" && s != "cancelled";
}

QemuVm QemuVm::attach(const std::string& qmp_path, std::chrono::milliseconds timeout) {
  QmpClient qmp = QmpClient::connect(qmp_path, timeout);
  ProcessHandle proc;
  if (qmp.peer_pid() > 0) proc = ProcessHandle(qmp.peer_pid());
  return QemuVm(std::make_unique<QmpClient>(std::move(qmp)), std::move(proc));
}

QemuVm QemuVm::over(std::unique_ptr<QmpEndpoint> qmp, ProcessHandle proc) { return QemuVm(std::move(qmp), std::move(proc)); }

nlohmann::json QemuVm::run(const std::string& command, const nlohmann::json& args) {
  return qmp_->execute(command, args, kCommandTimeout);
}

std::string QemuVm::status() { return run("query-status").value("status", std::string()); }

std::string QemuVm::name() { return run("query-name").value("name", std::string()); }

void QemuVm::stop() { run("stop"); }

void QemuVm::cont() { run("cont"); }

void QemuVm::set_ignore_shared(bool on) {
  run("migrate-set-capabilities",
               {{"capabilities", nlohmann::json::array({{{"capability", "x-ignore-shared"}, {"state", on}}})}});
}

RamBackend QemuVm::ram_backend() {
  const auto memdevs = run("query-memdev");
  if (!memdevs.is_array() || memdevs.empty())
    throw Error(ErrorKind::usage, where() +
                                      " has no memory backend object: start it with -object memory-backend-file,id=pc.ram,"
                                      "size=SIZE,mem-path=/dev/shm/FILE,share=on -machine memory-backend=pc.ram");
  if (memdevs.size() > 1)
    throw Error(ErrorKind::usage, where() + " has " + std::to_string(memdevs.size()) +
                                      " memory backends; hymig moves a guest with exactly one (its RAM file)");
  const auto& m = memdevs[0];
  RamBackend b;
  b.id = m.value("id", std::string());
  b.size = m.value("size", std::uint64_t{0});
  b.shared = m.value("share", false);
  if (b.id.empty()) throw Error(ErrorKind::usage, "the memory backend of " + where() + " has no id");
  try {
    b.mem_path = run("qom-get", {{"path", "/objects/" + b.id}, {"property", "mem-path"}}).get<std::string>();
  } catch (const QmpError&) {
    throw Error(ErrorKind::usage, "the guest's memory backend '" + b.id + "' is not a file (memory-backend-ram?): start QEMU with "
                                  "-object memory-backend-file,id=" + b.id + ",mem-path=/dev/shm/FILE,share=on");
  }
  if (!b.shared)
    throw Error(ErrorKind::usage, "the guest's RAM file " + b.mem_path + " is mapped privately by QEMU: add share=on to -object "
                                  "memory-backend-file,id=" + b.id + " (hymig reads and writes the file itself)");
  return b;
}

std::vector<std::string> QemuVm::migration_blockers() {
  std::vector<std::string> out;
  const auto q = query_migrate();
  if (auto it = q.find("blocked-reasons"); it != q.end() && it->is_array())
    for (const auto& r : *it) out.push_back(r.is_string() ? r.get<std::string>() : r.dump());
  return out;
}

nlohmann::json QemuVm::query_migrate() { return run("query-migrate"); }

std::string QemuVm::migration_status() { return query_migrate().value("status", std::string()); }

void QemuVm::migrate_to_fd(UniqueFd fd) {
  qmp_->execute_with_fd("getfd", {{"fdname", kFdName}}, fd.get());
  fd.reset();  // QEMU holds its own copy now
  run("migrate", {{"uri", std::string("fd:") + kFdName}});
}

void QemuVm::migrate_incoming_fd(UniqueFd fd) {
  qmp_->execute_with_fd("getfd", {{"fdname", kFdName}}, fd.get());
  fd.reset();
  run("migrate-incoming", {{"uri", std::string("fd:") + kFdName}});
}

void QemuVm::migrate_cancel() { run("migrate_cancel"); }

void QemuVm::wait_migration_completed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto q = query_migrate();
    const std::string s = q.value("status", std::string());
    if (s == "completed") return;
    if (s == "failed" || s == "cancelled")
      throw Error(ErrorKind::io, "QEMU's migration " + s + (q.contains("error-desc") ? ": " + q.value("error-desc", std::string()) : std::string()));
    if (Clock::now() >= deadline)
      throw Error(ErrorKind::timeout, "QEMU's migration still '" + s + "' after " + std::to_string(timeout.count()) + " ms");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool QemuVm::wait_gone(std::chrono::milliseconds timeout) noexcept {
  try {
    if (process_) return process_.wait_exit(timeout);
    // No process handle (QEMU in another PID namespace): gone once it closed its QMP socket.
    return qmp_->wait_closed(timeout);
  } catch (const std::exception&) {
  }
  return false;
}

void QemuVm::quit(std::chrono::milliseconds grace) noexcept {
  try {
    qmp_->execute("quit", nullptr, std::chrono::milliseconds(2000));
  } catch (const std::exception&) {
    // QEMU may close the socket before it answers; whether it is gone is checked next.
  }
  if (!wait_gone(grace)) kill();
}

bool QemuVm::kill() noexcept {
  try {
    if (process_) return process_.kill_and_wait(std::chrono::milliseconds(10000));
    qmp_->execute("quit", nullptr, std::chrono::milliseconds(2000));  // the best there is without a pid
  } catch (const std::exception&) {
  }
  return wait_gone(std::chrono::milliseconds(10000));
}

}  // namespace hymig::vm
