// The edits hymig makes on libvirt domain XML (vm/domain_xml.hpp, libxml2: the output is libxml2's
// serialization, attributes in double quotes), and the checks on a definition that arrives in
// notify (vm/libvirt_image.hpp).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "protocol/wire.hpp"
#include "vm/domain_survey.hpp"
#include "vm/domain_xml.hpp"
#include "vm/libvirt_image.hpp"

using namespace hymig;
using namespace hymig::vm;

namespace {

const std::string kDomain = R"(<domain type='qemu'>
  <name>web1</name>
  <memory unit='KiB'>262144</memory>
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
  </memoryBacking>
  <devices>
    <memballoon model='none'/>
  </devices>
</domain>
)";

}  // namespace

TEST(DomainXml, SharedFileMemoryIsRecognised) {
  EXPECT_TRUE(has_shared_file_memory(kDomain));
  EXPECT_FALSE(has_shared_file_memory("<domain type='qemu'><memory>1</memory></domain>"));
  // A file without shared access is a private copy QEMU keeps to itself.
  EXPECT_FALSE(has_shared_file_memory("<domain><memoryBacking><source type='file'/></memoryBacking></domain>"));
  EXPECT_FALSE(has_shared_file_memory("<domain><memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking></domain>"));
  // Outside <memoryBacking> the same elements mean something else (a disk's source, say).
  EXPECT_FALSE(has_shared_file_memory("<domain><devices><disk><source type='file'/><access mode='shared'/></disk></devices></domain>"));
}

TEST(DomainXml, ArgumentsAreAddedWithTheNamespaceAndEscaped) {
  const std::string x = add_qemu_args(kDomain, {"-incoming", "defer", "-qmp", "unix:/run/hymig/a&b.qmp,server=on"});
  EXPECT_NE(x.find("<domain xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\" type=\"qemu\">"), std::string::npos) << x;
  EXPECT_NE(x.find("<qemu:arg value=\"-incoming\"/>\n    <qemu:arg value=\"defer\"/>"), std::string::npos) << x;
  EXPECT_NE(x.find("a&amp;b.qmp"), std::string::npos) << x;
  EXPECT_LT(x.find("</qemu:commandline>"), x.find("</domain>"));
  // An existing commandline gets the arguments appended, the namespace is not declared twice.
  const std::string twice = add_qemu_args(x, {"-S"});
  EXPECT_EQ(twice.find("xmlns:qemu=", twice.find("xmlns:qemu=") + 1), std::string::npos);
  EXPECT_LT(twice.find("defer"), twice.find("<qemu:arg value=\"-S\"/>"));
  EXPECT_EQ(twice.find("<qemu:commandline>", twice.find("<qemu:commandline>") + 1), std::string::npos) << twice;
  EXPECT_THROW(add_qemu_args("<nothing/>", {"-S"}), Error);
  // Whatever the value holds, it stays one attribute value (no markup gets in).
  const std::string hostile = add_qemu_args(kDomain, {"'/><qemu:arg value='-evil"});
  EXPECT_EQ(hostile.find("<qemu:arg value='-evil"), std::string::npos) << hostile;
  EXPECT_NE(hostile.find("value=\"'/&gt;&lt;qemu:arg value='-evil\""), std::string::npos) << hostile;
  // The rest of the document is left as it was: the result is the same domain plus the arguments.
  EXPECT_TRUE(has_shared_file_memory(x));
  EXPECT_EQ(add_qemu_args(x, {}), x);
}

TEST(DomainXml, HymigsOwnArgumentsAreStrippedOthersKept) {
  const std::string sock = "unix:/run/hymig/" + hymig_qmp_socket_name("e97780ab-18dd-461b-856f-4c19720343ff") + ",server=on,wait=off";
  const std::string ours = add_qemu_args(kDomain, {"-incoming", "defer", "-qmp", sock});
  const std::string clean = strip_hymig_qemu_args(ours);
  EXPECT_EQ(clean.find("qemu:commandline"), std::string::npos) << clean;
  EXPECT_EQ(clean.find("-incoming"), std::string::npos);
  EXPECT_NE(clean.find("<memballoon model=\"none\"/>"), std::string::npos);
  EXPECT_NE(clean.find("</devices>\n</domain>"), std::string::npos) << clean;  // no indentation left behind
  // The user's own arguments stay, and so does a -qmp of theirs.
  const std::string mixed = add_qemu_args(kDomain, {"-device", "pvpanic", "-qmp", "unix:/run/theirs.qmp,server=on", "-incoming",
                                                    "defer", "-qmp", sock});
  const std::string kept = strip_hymig_qemu_args(mixed);
  EXPECT_NE(kept.find("<qemu:arg value=\"pvpanic\"/>"), std::string::npos) << kept;
  EXPECT_NE(kept.find("/run/theirs.qmp"), std::string::npos) << kept;
  EXPECT_EQ(kept.find("hymig-"), std::string::npos) << kept;
  EXPECT_EQ(kept.find("defer"), std::string::npos) << kept;
  EXPECT_EQ(strip_hymig_qemu_args(kDomain), kDomain);
}

// Malformed XML is a protocol error from every function; a DOCTYPE (and so any entity) is refused.
TEST(DomainXml, MalformedXmlAndDoctypesAreProtocolErrors) {
  const std::vector<std::string> bad = {
      "", "not xml", "<domain>", "<domain><name>a</domain>", "<domain a='1' a='2'/>", "<domain>&undeclared;</domain>",
      "<!DOCTYPE domain><domain/>",
      "<!DOCTYPE domain [<!ENTITY x 'y'>]><domain>&x;</domain>",
      "<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/evil.dtd'><domain/>",
      "<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY % p SYSTEM 'file:///etc/passwd'> %p;]><domain/>",
      std::string("<domain>") + std::string(kMaxDomainXmlBytes, ' ') + "</domain>"};
  for (const auto& x : bad) {
    for (int f = 0; f < 3; ++f) {
      try {
        if (f == 0) has_shared_file_memory(x);
        if (f == 1) add_qemu_args(x, {"-S"});
        if (f == 2) strip_hymig_qemu_args(x);
        ADD_FAILURE() << "accepted (function " << f << "): " << x.substr(0, 200);
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::protocol) << x.substr(0, 200) << ": " << e.what();
      }
    }
  }
  try {
    add_qemu_args("<!DOCTYPE domain [<!ENTITY x 'y'>]><domain>&x;</domain>", {});
    ADD_FAILURE() << "a DOCTYPE was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("DOCTYPE"), std::string::npos) << e.what();
  }
}

#ifdef HYMIG_HAVE_LIBVIRT
// A forged or malformed definition in notify is refused before libvirt is even contacted.
TEST(LibvirtTargetDefinition, MalformedDefinitionsAreProtocolErrors) {
  Notify n;
  n.image_kind = "vm";
  n.page_size = 4096;
  n.page_count = 16;
  n.image_bytes = 16 * 4096;
  const LibvirtTargetOptions opts{"qemu+unix:///system?socket=/nonexistent/hymig-test", "/nonexistent/hymig-test"};
  const std::string good_uuid = "e97780ab-18dd-461b-856f-4c19720343ff";
  const std::vector<std::string> defs = {
      "not json", "{}", R"({"hypervisor":"xen"})",
      R"({"hypervisor":"libvirt","name":"a","uuid":"not-a-uuid","xml":"<domain/>","persistent":false})",
        R"({"hypervisor":"libvirt","name":"","uuid":")" + good_uuid + R"(","xml":"<domain/>","persistent":false})",
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid + R"(","xml":"rm -rf","persistent":false})",
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid + R"(","xml":"<domain/>","persistent":true})",
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid + R"(","xml":"<domain/>","persistent":"yes"})",
        // Well-formed, but not the domain the definition names (libvirt would start or define another).
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid + R"(","xml":"<domain/>","persistent":false})",
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid + R"(","xml":"<domain><name>b</name><uuid>)" + good_uuid +
            R"(</uuid></domain>","persistent":false})",
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid +
            R"(","xml":"<domain><name>a</name><uuid>00000000-18dd-461b-856f-4c19720343ff</uuid></domain>","persistent":false})",
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid + R"(","xml":"<domain><name>a</name><uuid>)" + good_uuid +
            R"(</uuid></domain>","persistent":true,"persistent_xml":"<domain><name>other</name><uuid>)" + good_uuid + R"(</uuid></domain>"})",
        // Not a domain, or not XML libxml2 accepts.
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid + R"(","xml":"<network><name>a</name></network>","persistent":false})",
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid +
            R"(","xml":"<!DOCTYPE d [<!ENTITY n 'a'>]><domain><name>&n;</name></domain>","persistent":false})",
        R"({"hypervisor":"libvirt","name":"a","uuid":")" + good_uuid + R"(","xml":"<domain><name>a</name>","persistent":false})"};
  for (const auto& def : defs) {
    n.vm_definition = def;
    try {
      open_libvirt_target(opts, n);
      ADD_FAILURE() << "accepted: " << def;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::protocol) << def << ": " << e.what();
    }
  }
}
#else
// Built without libvirt (HYMIG_WITH_LIBVIRT=OFF): every libvirt entry point is a usage error that
// names the option, so the command exits 2 saying why.
TEST(LibvirtTargetDefinition, BuiltWithoutLibvirtEveryEntryPointRefuses) {
  const auto refuses = [](auto&& f) {
    try {
      f();
      ADD_FAILURE() << "no refusal";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage) << e.what();
      EXPECT_NE(std::string(e.what()).find("HYMIG_WITH_LIBVIRT=OFF"), std::string::npos) << e.what();
    }
  };
  refuses([] { open_libvirt_source_image("a", ""); });
  refuses([] { migrate_domain_natively("a", "", "qemu+tcp://b/system", ""); });
  refuses([] { prefetch_libvirt_capabilities(""); });
  refuses([] { open_libvirt_target(LibvirtTargetOptions{}, Notify{}); });
  refuses([] { survey_running_domains(""); });
}
#endif

namespace hymig::vm {
namespace {

TEST(DomainXml, HugePageSizeIsReadWithItsUnit) {
  const std::uint64_t def = 2u << 20;
  EXPECT_EQ(hugepage_bytes("<domain><name>a</name></domain>", def), 0u);
  EXPECT_EQ(hugepage_bytes("<domain><memoryBacking><source type='file'/></memoryBacking></domain>", def), 0u);
  EXPECT_EQ(hugepage_bytes("<domain><memoryBacking><hugepages/></memoryBacking></domain>", def), def);
  EXPECT_EQ(hugepage_bytes("<domain><memoryBacking><hugepages><page size='1' unit='G'/></hugepages></memoryBacking></domain>", def),
            1u << 30);
  EXPECT_EQ(hugepage_bytes("<domain><memoryBacking><hugepages><page size='2048'/></hugepages></memoryBacking></domain>", def),
            2u << 20);
  EXPECT_THROW(hugepage_bytes("<domain><memoryBacking><hugepages><page size='x'/></hugepages></memoryBacking></domain>", def), Error);
  EXPECT_THROW(hugepage_bytes("<domain><memoryBacking><hugepages><page size='1' unit='parsec'/></hugepages></memoryBacking></domain>", def),
               Error);
}

}  // namespace
}  // namespace hymig::vm
