// What `hymig drain` needs to know of each running domain before it plans: its RAM, whether that
// RAM is on huge pages, and whether hymig can move it at all (and why not).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hymig::vm {

struct DomainSurvey {
  std::string name;
  std::uint64_t ram_bytes = 0;
  std::uint64_t hugepage_bytes = 0;  // the huge page size its RAM needs at the target; 0: none
  bool movable = false;              // hymig can migrate it (RAM in a shared file, no blocker)
  std::string why_not;               // when not movable: the reason, as `hymig migrate --domain` gives it
};

// Every running domain at libvirt `uri` ("" = default), by name. Reads only: each domain's XML and
// what QEMU says about migration blockers; nothing is paused or changed.
std::vector<DomainSurvey> survey_running_domains(const std::string& uri);

// The host's default huge page size (/proc/meminfo Hugepagesize), 2 MiB when it cannot be read.
std::uint64_t default_hugepage_bytes();

}  // namespace hymig::vm
