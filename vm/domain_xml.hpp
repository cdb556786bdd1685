// Edits of a libvirt domain XML that hymig makes: whether the guest's RAM is a shared file, and
// the QEMU arguments it adds to (and later removes from) a destination domain. Text edits on
// libvirt's own formatting of the XML, which is regular; pure functions, unit-tested.
#pragma once

#include <string>
#include <vector>

namespace hymig::vm {

// True when <memoryBacking> has <source type='file'/> and <access mode='shared'/>.
bool has_shared_file_memory(const std::string& xml);

// `xml` with `args` appended to its <qemu:commandline> (created, with the qemu namespace declared
// on <domain>, when there is none). Each argument is XML-escaped.
std::string add_qemu_args(const std::string& xml, const std::vector<std::string>& args);

// `xml` without the arguments add_qemu_args() put there for an incoming hymig migration
// (-incoming defer, and a -qmp whose socket is named hymig-*.qmp); an emptied
// <qemu:commandline> goes too.
std::string strip_hymig_qemu_args(const std::string& xml);

// The socket name hymig gives the extra monitor of a destination domain.
std::string hymig_qmp_socket_name(const std::string& uuid);

}  // namespace hymig::vm
