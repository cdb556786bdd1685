// libvirt domain XML as hymig reads and edits it: parsed with libxml2 (never matched or edited as
// text), safely — the XML of an incoming domain comes from a peer. The parser loads nothing from
// the network or the file system, expands no entity and refuses any DOCTYPE (so no internal
// subset, no entity declarations: a "billion laughs" document is refused at its DOCTYPE, before
// any expansion); input is bounded in size and libxml2 bounds the nesting depth. Anything that is
// not well-formed XML is Error{protocol}.
//
// The edits: whether the guest's RAM is a shared file, and the QEMU arguments hymig adds to (and
// later removes from) a destination domain. Edits keep the rest of the document as it was (text,
// whitespace, order); pure functions, unit-tested.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

// libxml2's handle types, without its headers in ours.
struct _xmlDoc;
struct _xmlNode;

namespace hymig::vm {

// The most a domain XML may hold (notify bounds vm_definition, all of it, to 256 KiB as well).
inline constexpr std::size_t kMaxDomainXmlBytes = 256 * 1024;

// The namespace of libvirt's QEMU-specific elements (<qemu:commandline>, <qemu:override>, ...).
inline constexpr const char* kQemuXmlNamespace = "http://libvirt.org/schemas/domain/qemu/1.0";

// A parsed XML document (RAII over libxml2's xmlDoc).
class XmlDocument {
 public:
  // Parses `text` (at most `max_bytes`): Error{protocol} naming `what` when it is too large, not
  // well-formed, has a DOCTYPE, or has no root element.
  static XmlDocument parse(std::string_view text, std::string_view what = "the domain XML",
                           std::size_t max_bytes = kMaxDomainXmlBytes);

  _xmlDoc* get() const { return doc_.get(); }
  _xmlNode* root() const;
  // The root element (and everything in it) as text; no XML declaration.
  std::string serialize() const;

 private:
  XmlDocument() = default;
  struct Free {
    void operator()(_xmlDoc* d) const noexcept;
  };
  std::unique_ptr<_xmlDoc, Free> doc_;
};

// A domain document: parsed as above, and its root is <domain> (Error{protocol} otherwise).
XmlDocument parse_domain_xml(std::string_view text, std::string_view what = "the domain XML");

// The <name> and <uuid> a domain XML gives its domain ("" where absent).
struct DomainIdentity {
  std::string name, uuid;
};
DomainIdentity domain_identity(const XmlDocument& domain);

// True when <domain>'s <memoryBacking> has <source type='file'/> and <access mode='shared'/>.
bool has_shared_file_memory(const std::string& xml);

// The huge page size a domain's RAM is backed by (<memoryBacking><hugepages>, its <page size>
// when given, else `default_bytes`: the host's default huge page size), or 0 without huge pages.
std::uint64_t hugepage_bytes(const std::string& xml, std::uint64_t default_bytes);

// `xml` with `args` appended to its <qemu:commandline> (created, with the qemu namespace declared
// on <domain> as xmlns:qemu, when there is none). Values are escaped as XML needs.
std::string add_qemu_args(const std::string& xml, const std::vector<std::string>& args);

// `xml` without the arguments add_qemu_args() put there for an incoming hymig migration
// (-incoming defer, and a -qmp whose socket is named hymig-*.qmp); an emptied
// <qemu:commandline> goes too. `xml` unchanged, byte for byte, when it has none of them.
std::string strip_hymig_qemu_args(const std::string& xml);

// The socket name hymig gives the extra monitor of a destination domain.
std::string hymig_qmp_socket_name(const std::string& uuid);

}  // namespace hymig::vm
