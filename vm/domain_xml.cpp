#include "vm/domain_xml.hpp"

#include <regex>

#include "transport/error.hpp"

namespace hymig::vm {
namespace {

constexpr const char* kQemuNs = "http://libvirt.org/schemas/domain/qemu/1.0";

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '\'': out += "&apos;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// The text between <TAG ...> and </TAG> (empty when absent or self-closed).
std::string element_body(const std::string& xml, const std::string& tag) {
  const std::regex open("<" + tag + R"((\s[^>]*)?>)");
  std::smatch m;
  if (!std::regex_search(xml, m, open)) return {};
  const auto start = static_cast<std::size_t>(m.position(0) + m.length(0));
  const auto end = xml.find("</" + tag + ">", start);
  return end == std::string::npos ? std::string() : xml.substr(start, end - start);
}

}  // namespace

bool has_shared_file_memory(const std::string& xml) {
  const std::string mb = element_body(xml, "memoryBacking");
  return std::regex_search(mb, std::regex(R"(<source\s+type=['"]file['"])")) &&
         std::regex_search(mb, std::regex(R"(<access\s+mode=['"]shared['"])"));
}

std::string hymig_qmp_socket_name(const std::string& uuid) { return "hymig-" + uuid + ".qmp"; }

std::string add_qemu_args(const std::string& xml, const std::vector<std::string>& args) {
  std::string lines;
  for (const auto& a : args) lines += "    <qemu:arg value='" + escape(a) + "'/>\n";
  std::string out = xml;
  if (const auto pos = out.find("</qemu:commandline>"); pos != std::string::npos) {
    out.insert(pos, lines);
    return out;
  }
  const auto end = out.rfind("</domain>");
  const auto root = out.find("<domain");
  if (end == std::string::npos || root == std::string::npos) throw Error(ErrorKind::protocol, "the domain XML has no <domain> element");
  out.insert(end, "  <qemu:commandline>\n" + lines + "  </qemu:commandline>\n");
  // Declare the namespace on <domain> unless it already is (under whatever prefix: libvirt wants 'qemu').
  const auto root_end = out.find('>', root);
  if (out.substr(root, root_end - root).find("xmlns:qemu=") == std::string::npos)
    out.insert(root + 7, std::string(" xmlns:qemu='") + kQemuNs + "'");
  return out;
}

std::string strip_hymig_qemu_args(const std::string& xml) {
  std::string out = std::regex_replace(
      xml, std::regex(R"(\s*<qemu:arg value=['"]-incoming['"]\s*/>\s*<qemu:arg value=['"]defer['"]\s*/>)"), "");
  out = std::regex_replace(out,
                           std::regex(R"(\s*<qemu:arg value=['"]-qmp['"]\s*/>\s*<qemu:arg value=['"]unix:[^'"]*/hymig-[^'"/]*\.qmp[^'"]*['"]\s*/>)"),
                           "");
  out = std::regex_replace(out, std::regex(R"(\s*<qemu:commandline>\s*</qemu:commandline>)"), "");
  return out;
}

}  // namespace hymig::vm
