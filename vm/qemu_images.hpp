// A guest QEMU's RAM as an engine image, whoever manages the QEMU: the engine-facing half shared
// by plain QEMU (vm_image.cpp) and libvirt domains (libvirt_image.cpp).
//
// The guest's RAM lives in a shared file; hymig maps it (read-only on the source, finding modified
// pages by hashing them; read-write on the destination, whose QEMU waits in -incoming defer). QEMU
// moves only the device state, with x-ignore-shared, through a socket pair whose ends hymig holds.
// What differs between managers — how the source is paused, continued and ended, how the
// destination is resumed or thrown away — is a GuestControl.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/unique_fd.hpp"
#include "images/image.hpp"
#include "protocol/wire.hpp"
#include "vm/qemu_vm.hpp"

namespace hymig::vm {

// The plain file name a guest's image goes by (its name, else its RAM file's): what notify allows.
std::string vm_image_name(const std::string& vm_name, const std::string& ram_path);

class SourceGuestControl {
 public:
  virtual ~SourceGuestControl() = default;
  virtual void pause(QemuVm& vm) = 0;
  virtual void cont(QemuVm& vm) = 0;
  // The destination committed: this copy must never run again. Ends the QEMU; never throws for
  // anything but a QEMU that may still exist.
  virtual void end(QemuVm& vm) = 0;
  virtual std::string definition() const { return {}; }  // SourceImage::vm_definition
};

class TargetGuestControl {
 public:
  virtual ~TargetGuestControl() = default;
  // The device state loaded, before the source may commit: everything commit needs that can fail
  // (a libvirt definition) happens here, so a failure still leaves the source free to resume.
  virtual void prepare(QemuVm& vm) {}
  // The source committed: run the guest here (and make it whatever it
  // was at the source, e.g. persistent). Throws when it cannot; the session then discards.
  virtual void resume(QemuVm& vm) = 0;
  // The session failed: the QEMU must be gone afterwards (and anything resume() defined undone).
  // Never throws; false when the QEMU could not be confirmed gone.
  virtual bool destroy(QemuVm& vm) noexcept = 0;
};

// The source image of the running guest behind `vm` (checked: running, no migration under way, no
// blocker, one shared RAM file). `label` names it in messages and becomes the image's name.
std::unique_ptr<SourceImage> make_qemu_source_image(QemuVm vm, std::unique_ptr<SourceGuestControl> control,
                                                    const std::string& label);

// Where a destination's RAM file may be. hymig empties and fills it, so it must be a regular file
// below one of `dirs`, reached through no symbolic link below that directory (the last component
// opened with O_NOFOLLOW, the ones between with O_NOFOLLOW|O_DIRECTORY, the file checked with
// fstat on the descriptor it then maps). `fix` ends the refusal's message (Error{refused}).
struct RamFileRule {
  std::vector<std::string> dirs;
  std::string fix;
};

// Opens a destination's RAM file `path` read-write under `rule`: Error{refused} (naming rule.dirs
// and rule.fix) when it is not a regular file below one of them, or is reached through a symbolic
// link below it. `dir` and `leaf` receive its directory and its name there (to delete that very
// file later).
UniqueFd open_target_ram_file(const RamFileRule& rule, const std::string& path, UniqueFd& dir, std::string& leaf);

// The rule for a plain QEMU (`serve --vm-qmp`): its RAM file in /dev/shm (or /dev/hugepages), where
// a shared memory-backend-file lives.
RamFileRule plain_qemu_ram_rule();

// The target of a migration into `vm` (checked: waiting in -incoming defer, RAM of the notified
// size in a shared file that `ram` allows). Once the checks passed the QEMU is the session's:
// `control->destroy` runs on any later failure. A QEMU that fails a check is left as it was (the
// caller decides).
std::unique_ptr<TargetImage> make_qemu_target_image(QemuVm vm, const Notify& n, std::unique_ptr<TargetGuestControl> control,
                                                    const RamFileRule& ram = plain_qemu_ram_rule());

}  // namespace hymig::vm
