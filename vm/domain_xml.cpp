#include "vm/domain_xml.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <cstdlib>
#include <mutex>
#include <optional>

#include "core/error.hpp"

namespace hymig::vm {
namespace {

const xmlChar* X(const char* s) { return reinterpret_cast<const xmlChar*>(s); }
const char* C(const xmlChar* s) { return reinterpret_cast<const char*>(s); }

void init_libxml() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

// What the parse of one document saw beyond libxml2's own errors.
struct ParseState {
  bool doctype = false;
};

// SAX internalSubset: called at <!DOCTYPE NAME ...>, before its internal subset is read. Stops the
// parser there: no DTD, so no entity is ever declared, loaded or expanded.
void stop_at_doctype(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
  auto* ctxt = static_cast<xmlParserCtxtPtr>(ctx);
  if (auto* st = static_cast<ParseState*>(ctxt->_private)) st->doctype = true;
  xmlStopParser(ctxt);
}

bool is_element(const xmlNode* n, const char* name) {
  return n && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, X(name));
}

bool in_qemu_ns(const xmlNode* n) { return n->ns && n->ns->href && xmlStrEqual(n->ns->href, X(kQemuXmlNamespace)); }

bool is_qemu_element(const xmlNode* n, const char* name) { return is_element(n, name) && in_qemu_ns(n); }

std::optional<std::string> attribute(const xmlNode* n, const char* name) {
  xmlChar* v = xmlGetNoNsProp(n, X(name));
  if (!v) return std::nullopt;
  std::string s(C(v));
  xmlFree(v);
  return s;
}

std::string text_of(const xmlNode* n) {
  xmlChar* v = xmlNodeGetContent(n);
  std::string s = v ? C(v) : "";
  xmlFree(v);
  return s;
}

bool is_blank_text(const xmlNode* n) { return n && n->type == XML_TEXT_NODE && xmlIsBlankNode(n); }

// Unlinks and frees `n`, and the whitespace before it (its indentation).
void remove_with_indent(xmlNode* n) {
  if (is_blank_text(n->prev)) {
    xmlNode* ws = n->prev;
    xmlUnlinkNode(ws);
    xmlFreeNode(ws);
  }
  xmlUnlinkNode(n);
  xmlFreeNode(n);
}

xmlNode* child_element(const xmlNode* parent, const char* name) {
  for (xmlNode* c = parent->children; c; c = c->next)
    if (is_element(c, name) && !c->ns) return c;
  return nullptr;
}

// The <qemu:commandline> children of <domain>.
std::vector<xmlNode*> qemu_commandlines(const xmlNode* root) {
  std::vector<xmlNode*> out;
  for (xmlNode* c = root->children; c; c = c->next)
    if (is_qemu_element(c, "commandline")) out.push_back(c);
  return out;
}

// "unix:DIR/hymig-UUID.qmp[,options]": the monitor add_qemu_args() gives a destination.
bool is_hymig_qmp_socket(const std::string& v) {
  if (v.rfind("unix:", 0) != 0) return false;
  const std::string path = v.substr(5, v.find(',') == std::string::npos ? std::string::npos : v.find(',') - 5);
  const auto slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return base.size() > 10 && base.rfind("hymig-", 0) == 0 && base.compare(base.size() - 4, 4, ".qmp") == 0;
}

}  // namespace

void XmlDocument::Free::operator()(_xmlDoc* d) const noexcept { xmlFreeDoc(d); }

XmlDocument XmlDocument::parse(std::string_view text, std::string_view what, std::size_t max_bytes) {
  const std::string name(what);
  if (text.empty()) throw Error(ErrorKind::protocol, name + " is empty");
  if (text.size() > max_bytes)
    throw Error(ErrorKind::protocol, name + " holds " + std::to_string(text.size()) + " bytes, more than the " +
                                         std::to_string(max_bytes) + " this side reads");
  init_libxml();
  std::unique_ptr<xmlParserCtxt, void (*)(xmlParserCtxtPtr)> ctxt(xmlNewParserCtxt(), xmlFreeParserCtxt);
  if (!ctxt || !ctxt->sax) throw Error(ErrorKind::io, "cannot create an XML parser (out of memory)");
  ParseState st;
  ctxt->_private = &st;
  ctxt->sax->internalSubset = stop_at_doctype;
  // No XML_PARSE_NOENT (entities stay unexpanded), no DTDLOAD/DTDATTR/DTDVALID (no DTD is read),
  // no XINCLUDE, no HUGE (libxml2's limits on depth and sizes stay); NONET in case anything would
  // still fetch. Errors come back through the context, not on stderr.
  const int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
  xmlDocPtr raw = xmlCtxtReadMemory(ctxt.get(), text.data(), static_cast<int>(text.size()), nullptr, nullptr, options);
  XmlDocument doc;
  doc.doc_.reset(raw);
  if (st.doctype || (raw && (raw->intSubset || raw->extSubset)))
    throw Error(ErrorKind::protocol, name + " has a DOCTYPE: refused (hymig reads no DTD and expands no entity)");
  if (!raw || !ctxt->wellFormed) {
    std::string why = "not well-formed";
    if (const xmlError* e = xmlCtxtGetLastError(ctxt.get()); e && e->message) {
      std::string m = e->message;
      while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
      why = "line " + std::to_string(e->line) + ": " + m;
    }
    throw Error(ErrorKind::protocol, name + " is not well-formed XML (" + why + ")");
  }
  if (!xmlDocGetRootElement(raw)) throw Error(ErrorKind::protocol, name + " has no root element");
  return doc;
}

_xmlNode* XmlDocument::root() const { return doc_ ? xmlDocGetRootElement(doc_.get()) : nullptr; }

std::string XmlDocument::serialize() const {
  std::unique_ptr<xmlBuffer, void (*)(xmlBufferPtr)> buf(xmlBufferCreate(), xmlBufferFree);
  if (!buf) throw Error(ErrorKind::io, "cannot serialize XML (out of memory)");
  if (xmlNodeDump(buf.get(), doc_.get(), root(), 0, 0) < 0) throw Error(ErrorKind::io, "cannot serialize XML");
  std::string out(C(xmlBufferContent(buf.get())), static_cast<std::size_t>(xmlBufferLength(buf.get())));
  out += '\n';
  return out;
}

XmlDocument parse_domain_xml(std::string_view text, std::string_view what) {
  XmlDocument doc = XmlDocument::parse(text, what);
  const xmlNode* root = doc.root();
  if (!is_element(root, "domain") || root->ns)
    throw Error(ErrorKind::protocol, std::string(what) + " is no libvirt domain (its root is <" + C(root->name) + ">)");
  return doc;
}

DomainIdentity domain_identity(const XmlDocument& domain) {
  DomainIdentity id;
  if (const xmlNode* n = child_element(domain.root(), "name")) id.name = text_of(n);
  if (const xmlNode* u = child_element(domain.root(), "uuid")) id.uuid = text_of(u);
  return id;
}

bool has_shared_file_memory(const std::string& xml) {
  const XmlDocument doc = XmlDocument::parse(xml);
  const xmlNode* root = doc.root();
  if (!is_element(root, "domain")) return false;
  const xmlNode* mb = child_element(root, "memoryBacking");
  if (!mb) return false;
  const xmlNode* source = child_element(mb, "source");
  const xmlNode* access = child_element(mb, "access");
  return source && access && attribute(source, "type") == "file" && attribute(access, "mode") == "shared";
}

std::uint64_t hugepage_bytes(const std::string& xml, std::uint64_t default_bytes) {
  const XmlDocument doc = XmlDocument::parse(xml);
  const xmlNode* root = doc.root();
  if (!is_element(root, "domain")) return 0;
  const xmlNode* mb = child_element(root, "memoryBacking");
  const xmlNode* huge = mb ? child_element(mb, "hugepages") : nullptr;
  if (!huge) return 0;
  const xmlNode* page = child_element(huge, "page");
  const auto size = page ? attribute(page, "size") : std::nullopt;
  if (!size) return default_bytes;
  std::uint64_t unit = 1024;  // libvirt's default unit here is KiB
  if (const auto u = attribute(page, "unit")) {
    static const std::pair<const char*, std::uint64_t> units[] = {
        {"b", 1}, {"bytes", 1}, {"k", 1024}, {"KiB", 1024}, {"KB", 1000}, {"M", 1u << 20}, {"MiB", 1u << 20},
        {"MB", 1000000}, {"G", 1u << 30}, {"GiB", 1u << 30}, {"GB", 1000000000}};
    unit = 0;
    for (const auto& [name, factor] : units)
      if (*u == name) unit = factor;
    if (!unit) throw Error(ErrorKind::protocol, "the domain XML's huge page unit '" + *u + "' is unknown");
  }
  char* end = nullptr;
  const unsigned long long v = std::strtoull(size->c_str(), &end, 10);
  if (size->empty() || *end || v == 0 || v > (1ull << 40) / unit)
    throw Error(ErrorKind::protocol, "the domain XML's huge page size '" + *size + "' is not a size");
  return v * unit;
}

std::string hymig_qmp_socket_name(const std::string& uuid) { return "hymig-" + uuid + ".qmp"; }

std::string add_qemu_args(const std::string& xml, const std::vector<std::string>& args) {
  const XmlDocument doc = parse_domain_xml(xml);
  xmlNode* root = doc.root();
  // The namespace, declared on <domain> unless it already is in scope (under whatever prefix).
  xmlNs* ns = xmlSearchNsByHref(doc.get(), root, X(kQemuXmlNamespace));
  if (!ns) ns = xmlNewNs(root, X(kQemuXmlNamespace), X("qemu"));
  if (!ns) throw Error(ErrorKind::protocol, "the domain XML binds the prefix 'qemu' to another namespace");

  // Appended inside the last element child of `parent`, indented like libvirt's own output when
  // the document is indented (its last child is the whitespace before the closing tag).
  // (libxml2 merges adjacent text nodes: the indentation goes in before `node` once it is placed.)
  auto append = [&](xmlNode* parent, xmlNode* node, const char* indent) {
    if (xmlNode* closing_ws = is_blank_text(parent->last) ? parent->last : nullptr) {
      xmlAddPrevSibling(closing_ws, node);
      xmlAddPrevSibling(node, xmlNewDocText(doc.get(), X(indent)));
    } else {
      xmlAddChild(parent, node);
    }
  };

  const auto existing = qemu_commandlines(root);
  xmlNode* cmdline = existing.empty() ? nullptr : existing.back();
  const bool indented = is_blank_text(root->last);
  if (!cmdline) {
    cmdline = xmlNewDocNode(doc.get(), ns, X("commandline"), nullptr);
    if (!cmdline) throw Error(ErrorKind::io, "cannot edit the domain XML (out of memory)");
    append(root, cmdline, "\n  ");
    if (indented) xmlAddChild(cmdline, xmlNewDocText(doc.get(), X("\n  ")));
  }
  for (const auto& a : args) {
    xmlNode* arg = xmlNewDocNode(doc.get(), cmdline->ns ? cmdline->ns : ns, X("arg"), nullptr);
    // xmlNewProp takes the value as text: it is escaped when serialized.
    if (!arg || !xmlNewProp(arg, X("value"), X(a.c_str()))) throw Error(ErrorKind::io, "cannot edit the domain XML (out of memory)");
    append(cmdline, arg, "\n    ");
  }
  return doc.serialize();
}

std::string strip_hymig_qemu_args(const std::string& xml) {
  const XmlDocument doc = parse_domain_xml(xml);
  bool changed = false;
  for (xmlNode* cmdline : qemu_commandlines(doc.root())) {
    std::vector<xmlNode*> elems;
    for (xmlNode* c = cmdline->children; c; c = c->next)
      if (c->type == XML_ELEMENT_NODE) elems.push_back(c);
    auto arg_value = [](const xmlNode* n) -> std::optional<std::string> {
      return is_qemu_element(n, "arg") ? attribute(n, "value") : std::nullopt;
    };
    std::vector<xmlNode*> drop;
    for (std::size_t i = 0; i + 1 < elems.size(); ++i) {
      const auto a = arg_value(elems[i]), b = arg_value(elems[i + 1]);
      if (!a || !b) continue;
      if ((*a == "-incoming" && *b == "defer") || (*a == "-qmp" && is_hymig_qmp_socket(*b))) {
        drop.push_back(elems[i]);
        drop.push_back(elems[i + 1]);
        ++i;
      }
    }
    for (xmlNode* n : drop) remove_with_indent(n);
    changed = changed || !drop.empty();
    bool empty = true;
    for (xmlNode* c = cmdline->children; c && empty; c = c->next) empty = is_blank_text(c);
    if (empty && !drop.empty()) remove_with_indent(cmdline);
  }
  return changed ? doc.serialize() : xml;
}

}  // namespace hymig::vm
