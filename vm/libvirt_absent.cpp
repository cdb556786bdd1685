// A hymig built without libvirt (HYMIG_WITH_LIBVIRT=OFF): the libvirt entry points refuse, as a
// usage error naming what to do, so `migrate --domain`, `serve --libvirt` and `drain` exit 2 with
// that message; synthetic, file and QMP images work as in any build.
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "vm/domain_survey.hpp"
#include "vm/libvirt_image.hpp"

namespace hymig::vm {
namespace {

[[noreturn]] void built_without_libvirt(const std::string& what) {
  throw Error(ErrorKind::usage, what +
                                    ": this hymig was built without libvirt (HYMIG_WITH_LIBVIRT=OFF); "
                                    "rebuild with libvirt-dev installed, or use --image qmp:PATH / serve --vm-qmp");
}

}  // namespace

std::unique_ptr<SourceImage> open_libvirt_source_image(const std::string&, const std::string&) {
  built_without_libvirt("--domain");
}

nlohmann::json migrate_domain_natively(const std::string&, const std::string&, const std::string&, const std::string&) {
  built_without_libvirt("--fallback native");
}

void prefetch_libvirt_capabilities(const std::string&) { built_without_libvirt("--libvirt"); }

std::unique_ptr<TargetImage> open_libvirt_target(const LibvirtTargetOptions&, const Notify&) {
  built_without_libvirt("an incoming libvirt domain");
}

std::vector<DomainSurvey> survey_running_domains(const std::string&) { built_without_libvirt("drain"); }

}  // namespace hymig::vm
