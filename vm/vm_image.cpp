#include "vm/vm_image.hpp"

#include <iostream>

#include "core/error.hpp"
#include "vm/qemu_images.hpp"
#include "vm/qemu_vm.hpp"

namespace hymig::vm {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kAttachTimeout{5000};

// A QEMU hymig drives alone: QMP stop/cont, and quit once the guest lives elsewhere.
class QmpSourceControl final : public SourceGuestControl {
 public:
  void pause(QemuVm& vm) override { vm.stop(); }
  void cont(QemuVm& vm) override { vm.cont(); }
  void end(QemuVm& vm) override { vm.quit(milliseconds(10000)); }
};

class QmpTargetControl final : public TargetGuestControl {
 public:
  void resume(QemuVm& vm) override { vm.cont(); }
  bool destroy(QemuVm& vm) noexcept override { return vm.kill(); }
};

void check_qmp_path(const std::string& path) {
  if (path.empty()) throw Error(ErrorKind::usage, "--image qmp: needs the QEMU's QMP socket, e.g. qmp:/run/guest.qmp");
}

std::unique_ptr<SourceImage> open_qmp_source_image(const std::string& path) {
  check_qmp_path(path);
  QemuVm vm = QemuVm::attach(path, kAttachTimeout);
  std::string label;
  try {
    label = vm_image_name(vm.name(), vm.ram_backend().mem_path);
  } catch (const Error&) {
    label = vm_image_name(std::string(), path);  // the image's own checks say what is wrong
  }
  return make_qemu_source_image(std::move(vm), std::make_unique<QmpSourceControl>(), label);
}

}  // namespace

void register_vm_image_schemes(ImageRegistry& registry) {
  registry.add({"qmp",
                "  qmp:PATH\n"
                "      a running QEMU guest, reached through its QMP socket PATH (-qmp unix:PATH,server=on,\n"
                "      wait=off; hymig must be its only client); its RAM must be a shared file (-object\n"
                "      memory-backend-file,id=pc.ram,size=S,mem-path=/dev/shm/F,share=on -machine\n"
                "      memory-backend=pc.ram). hymig moves the RAM; QEMU moves only the device state\n"
                "      (x-ignore-shared), through hymig's channel, after the RAM verified. The destination\n"
                "      runs `hymig serve --vm-qmp`. On commit this QEMU quits and its RAM file is deleted;\n"
                "      on failure the guest runs on here\n",
                check_qmp_path, open_qmp_source_image});
}

std::unique_ptr<TargetImage> open_vm_target(const std::string& qmp_path, const Notify& n, const RamFileRule& ram) {
  return make_qemu_target_image(QemuVm::attach(qmp_path, kAttachTimeout), n, std::make_unique<QmpTargetControl>(), ram);
}

}  // namespace hymig::vm
