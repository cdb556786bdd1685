// A QEMU guest's RAM as an engine image, reached through QMP (plain QEMU, no libvirt).
//
// The guest's RAM must live in a shared file (-object memory-backend-file,share=on,mem-path=FILE
// -machine memory-backend=ID). hymig maps that file: on the source read-only, finding modified
// pages by hashing them (QEMU exports no dirty log); on the destination read-write, while the
// destination QEMU waits in -incoming defer. QEMU itself moves only the device state, with the
// x-ignore-shared capability, through a socket pair whose ends hymig holds: the source QEMU
// migrates into one end after the memory verified, hymig carries the bytes over its own channel,
// and the destination QEMU loads them from the other end before it is resumed.
#pragma once

#include "vm/qemu_images.hpp"

#include <chrono>
#include <memory>
#include <string>

#include "images/image.hpp"
#include "images/image_registry.hpp"
#include "protocol/wire.hpp"

namespace hymig::vm {

// Adds the --image scheme "qmp:PATH": the running QEMU serving QMP at PATH. Its check wants a
// path and opens nothing; its open attaches, and throws Error{usage} naming the fix when the guest
// cannot be migrated this way (RAM not in a shared file, a migration blocker, ...).
void register_vm_image_schemes(ImageRegistry& registry);

// The destination of a "vm" image: the QEMU serving QMP at qmp_path, started with -incoming defer
// and a shared RAM file of the notified size. It is adopted once those checks pass: from then on
// a failed session kills it and deletes its RAM file, and commit() resumes it.
// `ram`: where its RAM file may be (plain_qemu_ram_rule(): /dev/shm, /dev/hugepages).
std::unique_ptr<TargetImage> open_vm_target(const std::string& qmp_path, const Notify& n,
                                            const RamFileRule& ram = plain_qemu_ram_rule());

}  // namespace hymig::vm
