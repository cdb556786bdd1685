// A domain XML from a peer (notify's vm_definition), as `hymig serve --libvirt` reads it: parsed
// (libxml2, bounded), its identity taken, checked against a typical policy, and given hymig's
// extra QEMU arguments. Whatever add_qemu_args returns for a domain the policy let through must
// still be one well-formed domain of the same identity (it edits the text).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "fuzz/decoder_table.hpp"
#include "vm/domain_policy.hpp"
#include "vm/domain_xml.hpp"

using namespace hymig;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string xml(reinterpret_cast<const char*>(data), size);
  static const vm::DomainPolicy policy = [] {
    vm::DomainPolicy p;
    p.allowed_paths = {"/var/lib/libvirt/images", "/dev/shm/guest.ram"};
    p.allowed_pools = {"default"};
    return p;
  }();
  static const std::vector<std::string> emulators = {"/usr/bin/qemu-system-x86_64"};
  try {
    const vm::XmlDocument doc = vm::parse_domain_xml(xml);
    const vm::DomainIdentity id = vm::domain_identity(doc);
    (void)vm::has_shared_file_memory(xml);
    (void)vm::hugepage_bytes(xml, 2u << 20);
    vm::check_domain_policy(doc, policy, emulators);
    const std::string edited =
        vm::add_qemu_args(xml, {"-incoming", "defer", "-qmp", "unix:/run/hymig/hymig-x.qmp,server=on,wait=off"});
    bool well_formed = true;
    try {
      const vm::XmlDocument again = vm::parse_domain_xml(edited, "the edited domain XML");
      const vm::DomainIdentity id2 = vm::domain_identity(again);
      FUZZ_CHECK(id2.name == id.name && id2.uuid == id.uuid);
    } catch (const Error&) {
      well_formed = false;
    }
    FUZZ_CHECK(well_formed);
    (void)vm::strip_hymig_qemu_args(edited);
  } catch (const Error& e) {
    FUZZ_CHECK(e.kind() == ErrorKind::protocol || e.kind() == ErrorKind::refused);
  }
  return 0;
}
