#include "vm/domain_survey.hpp"

#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "vm/domain_xml.hpp"
#include "vm/libvirt_domain.hpp"
#include "vm/libvirt_image.hpp"

namespace hymig::vm {

std::uint64_t default_hugepage_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    if (ls >> key >> kib && key == "Hugepagesize:") return kib * 1024;
  }
  return 2u << 20;
}

std::vector<DomainSurvey> survey_running_domains(const std::string& uri) {
  const LibvirtConnection conn = LibvirtConnection::open(uri);
  const std::uint64_t default_huge = default_hugepage_bytes();
  std::vector<DomainSurvey> out;
  for (const std::string& name : conn.active_domain_names()) {
    auto dom = LibvirtDomain::find(conn, name);
    if (!dom) continue;  // it ended meanwhile: nothing to move
    DomainSurvey s;
    s.name = name;
    try {
      s.ram_bytes = dom->memory_bytes();
      s.hugepage_bytes = hugepage_bytes(dom->xml(true), default_huge);
      // What `hymig migrate --domain` checks before it moves anything; the image is closed again.
      (void)open_libvirt_source_image(name, uri);
      s.movable = true;
    } catch (const NotMigratableByHymig& e) {
      s.why_not = e.what();
    } catch (const Error& e) {
      s.why_not = e.what();  // paused, vanished, libvirt refused: it cannot move now either
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace hymig::vm
