#include "protocol/wire.hpp"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/byte_codec.hpp"
#include "core/error.hpp"
#include "protocol/page_compressor.hpp"  // kMaxCompressiblePage

namespace hymig {
namespace {

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorKind::protocol, what); }

std::vector<std::byte> json_body(const nlohmann::json& j) {
  const std::string s = j.dump();
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

nlohmann::json parse_json(std::span<const std::byte> body, const char* what) {
  // The depth is checked as the parser meets each opening bracket, so a hostile nesting is refused
  // before anything deep is built (copying or destroying such a value recurses).
  const auto limit_depth = [what](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    if ((event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      bad(std::string(what) + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return true;
  };
  auto j = nlohmann::json::parse(reinterpret_cast<const char*>(body.data()),
                                 reinterpret_cast<const char*>(body.data() + body.size()), limit_depth, false);
  if (j.is_discarded() || !j.is_object()) bad(std::string(what) + ": body is not a JSON object");
  return j;
}

// Typed field access that names the field in its error.
template <typename T>
T field(const nlohmann::json& j, const char* msg, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) bad(std::string(msg) + ": missing field '" + name + "'");
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) bad(std::string(msg) + ": field '" + name + "' must be a string");
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) bad(std::string(msg) + ": field '" + name + "' must be a boolean");
  } else {
    if (!it->is_number_unsigned()) bad(std::string(msg) + ": field '" + name + "' must be an unsigned integer");
    const auto v = it->get<std::uint64_t>();
    if (v > std::numeric_limits<T>::max()) bad(std::string(msg) + ": field '" + name + "' out of range");
    return static_cast<T>(v);
  }
  return it->get<T>();
}

std::string check_text(const std::string& s, const char* msg, const char* name, std::size_t max) {
  if (s.size() > max) bad(std::string(msg) + ": field '" + name + "' longer than " + std::to_string(max));
  if (!is_printable_text(s)) bad(std::string(msg) + ": field '" + name + "' has a control, bidi or invalid UTF-8 character");
  return s;
}

// A message's "bulk_endpoints": an array of at most kMaxLanes printable strings.
std::vector<std::string> endpoints(const nlohmann::json& j, const char* msg) {
  auto it = j.find("bulk_endpoints");
  if (it == j.end() || !it->is_array() || it->size() > kMaxLanes)
    bad(std::string(msg) + ": field 'bulk_endpoints' must be an array of at most " + std::to_string(kMaxLanes));
  std::vector<std::string> out;
  for (const auto& e : *it) {
    if (!e.is_string()) bad(std::string(msg) + ": bulk endpoints must be strings");
    out.push_back(check_text(e.get<std::string>(), msg, "bulk_endpoints", 256));
  }
  return out;
}

bool one_of(const std::string& v, std::initializer_list<const char*> allowed) {
  return std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return v == a; });
}

}  // namespace

bool is_safe_image_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxImageNameBytes || s[0] == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '+';
  });
}

bool is_printable_text(std::string_view s) {
  // UTF-8 decoded by hand (RFC 3629: no overlongs, no surrogates, <= U+10FFFF); refused besides:
  // C0 and C1 controls, DEL, and the bidirectional formatting characters that reorder a log line
  // (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069).
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::uint32_t cp;
    std::size_t len;
    if (c < 0x80) {
      cp = c, len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1F, len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0F, len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07, len = 4;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return false;
    if (cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069))
      return false;
    i += len;
  }
  return true;
}

std::string printable(std::string_view s, std::size_t max) {
  if (s.size() <= max && is_printable_text(s)) return std::string(s);
  std::string out;
  for (char ch : s.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    out += (c >= 0x20 && c < 0x7F) ? ch : '?';
  }
  if (s.size() > max) out += "...";
  return out;
}

const char* to_string(MsgType t) {
  switch (t) {
    case MsgType::hello: return "hello";
    case MsgType::notify: return "notify";
    case MsgType::ready: return "ready";
    case MsgType::abort: return "abort";
    case MsgType::progress: return "progress";
    case MsgType::round_begin: return "round-begin";
    case MsgType::round_end: return "round-end";
    case MsgType::round_report: return "round-report";
    case MsgType::pause: return "pause";
    case MsgType::missing: return "missing";
    case MsgType::pages: return "pages";
    case MsgType::final_end: return "final-end";
    case MsgType::digest: return "digest";
    case MsgType::verify: return "verify";
    case MsgType::commit: return "commit";
    case MsgType::committed: return "committed";
    case MsgType::device_state: return "device-state";
    case MsgType::device_state_end: return "device-state-end";
    case MsgType::device_state_loaded: return "device-state-loaded";
    case MsgType::image_window: return "image-window";
    case MsgType::written: return "written";
    case MsgType::bind: return "bind";
    case MsgType::datagrams_done: return "datagrams-done";
    case MsgType::query: return "query";
    case MsgType::answer: return "answer";
  }
  return "unknown";
}

// ---- handshake ---------------------------------------------------------------------------------

std::vector<std::byte> encode_hello(const Hello& h, const nlohmann::json& caps) {
  return json_body({{"version", h.version}, {"role", h.role}, {"software", h.software}, {"caps", caps}});
}

Hello decode_hello(std::span<const std::byte> body, nlohmann::json& caps_out) {
  const char* m = "hello";
  const auto j = parse_json(body, m);
  Hello h;
  h.version = field<std::uint32_t>(j, m, "version");
  if (h.version == 0) bad("hello: version 0 is invalid");
  h.role = field<std::string>(j, m, "role");
  if (!one_of(h.role, {"source", "destination"})) bad("hello: role must be source or destination");
  h.software = check_text(field<std::string>(j, m, "software"), m, "software", 128);
  auto caps = j.find("caps");
  if (caps == j.end() || !caps->is_object()) bad("hello: field 'caps' must be an object");
  caps_out = *caps;
  return h;
}

std::string_view wire_name(BulkTransport t) {
  switch (t) {
    case BulkTransport::udp: return "udp";
    case BulkTransport::tcp: return "tcp";
    case BulkTransport::rdma_ud: return "ud";
  }
  return "?";
}
std::string_view wire_name(ReliableTransport t) { return t == ReliableTransport::rdma_rc ? "rc" : "tcp"; }
std::string_view wire_name(VerifyMode v) { return v == VerifyMode::fast ? "fast" : "full"; }
std::string_view wire_name(FinalDeltaMethod f) { return f == FinalDeltaMethod::write ? "write" : "send"; }

namespace {

// The value of `e` whose wire_name is `s`, or a bad-message error naming the field.
template <typename E, std::size_t N>
E from_wire(const std::string& s, const std::array<E, N>& values, const char* what) {
  for (E v : values)
    if (wire_name(v) == s) return v;
  std::string names;
  for (E v : values) names += (names.empty() ? "" : ", ") + std::string(wire_name(v));
  bad(std::string("notify: unknown ") + what + " '" + printable(s, 64) + "' (" + names + ")");
}

}  // namespace

std::vector<std::byte> encode_notify(const Notify& n) {
  nlohmann::json j = {{"session", n.session},
                      {"image_bytes", n.image_bytes},
                      {"page_size", n.page_size},
                      {"page_count", n.page_count},
                      {"image_kind", n.image_kind},
                      {"image_name", n.image_name},
                      {"bulk", wire_name(n.bulk)},
                      {"lanes", n.lanes},
                      {"bulk_endpoints", n.bulk_endpoints},
                      {"datagram_bytes", n.datagram_bytes},
                      {"verify", wire_name(n.verify)},
                      {"reliable", wire_name(n.reliable)},
                      {"final_delta", wire_name(n.final_delta)},
                      {"datagram_protection", n.protection == DatagramProtection::aead ? "aead" : "mac"}};
  if (!n.vm_definition.empty()) j["vm_definition"] = n.vm_definition;
  if (n.compressed_pages) j["page_compression"] = "zstd";
  return json_body(j);
}

Notify decode_notify(std::span<const std::byte> body) {
  const char* m = "notify";
  const auto j = parse_json(body, m);
  Notify n;
  n.session = field<std::uint64_t>(j, m, "session");
  n.image_bytes = field<std::uint64_t>(j, m, "image_bytes");
  n.page_size = field<std::uint32_t>(j, m, "page_size");
  n.page_count = field<std::uint64_t>(j, m, "page_count");
  n.image_kind = field<std::string>(j, m, "image_kind");
  n.image_name = check_text(field<std::string>(j, m, "image_name"), m, "image_name", 255);
  n.bulk = from_wire(field<std::string>(j, m, "bulk"),
                     std::array{BulkTransport::udp, BulkTransport::tcp, BulkTransport::rdma_ud}, "bulk transport");
  n.lanes = field<std::uint32_t>(j, m, "lanes");
  n.bulk_endpoints = endpoints(j, m);
  n.datagram_bytes = field<std::uint32_t>(j, m, "datagram_bytes");
  n.verify = from_wire(field<std::string>(j, m, "verify"), std::array{VerifyMode::full, VerifyMode::fast}, "verify mode");
  // Absent in notifies of hymig before RDMA: the session stays on TCP.
  if (j.contains("reliable"))
    n.reliable = from_wire(field<std::string>(j, m, "reliable"),
                           std::array{ReliableTransport::tcp, ReliableTransport::rdma_rc}, "reliable transport");
  if (j.contains("vm_definition")) n.vm_definition = field<std::string>(j, m, "vm_definition");
  // Absent before the final delta could go by RDMA WRITE: pages messages.
  if (j.contains("final_delta"))
    n.final_delta = from_wire(field<std::string>(j, m, "final_delta"),
                              std::array{FinalDeltaMethod::send, FinalDeltaMethod::write}, "final delta method");
  const auto protection = field<std::string>(j, m, "datagram_protection");
  if (!one_of(protection, {"aead", "mac"})) bad("notify: datagram_protection must be aead or mac");
  n.protection = protection == "aead" ? DatagramProtection::aead : DatagramProtection::mac;
  if (j.contains("page_compression")) {
    const auto c = field<std::string>(j, m, "page_compression");
    if (!one_of(c, {"zstd", "none"})) bad("notify: page_compression must be zstd or none");
    n.compressed_pages = c == "zstd";
  }

  if (n.page_size < 512 || n.page_size > (2u << 20) || (n.page_size & (n.page_size - 1)))
    bad("notify: page_size must be a power of two from 512 to 2 MiB");
  if (n.page_count == 0 || n.page_count > (std::uint64_t{1} << 40)) bad("notify: page_count out of range");
  if (n.image_bytes / n.page_size != n.page_count || n.image_bytes % n.page_size)
    bad("notify: image_bytes is not page_count * page_size");
  if (!one_of(n.image_kind, {"synthetic", "file", "vm"})) bad("notify: unknown image_kind '" + n.image_kind + "'");
  if (!is_safe_image_name(n.image_name))
    bad("notify: image_name must be 1.." + std::to_string(kMaxImageNameBytes) +
        " of A-Z a-z 0-9 . _ - +, not starting with '.'");
  if (n.lanes == 0 || n.lanes > kMaxLanes) bad("notify: lanes must be 1.." + std::to_string(kMaxLanes));
  const bool datagrams = uses_datagrams(n.bulk);
  if (datagrams && n.bulk_endpoints.size() != n.lanes) bad("notify: one bulk endpoint per lane");
  if (!datagrams && !n.bulk_endpoints.empty()) bad("notify: bulk endpoints for the tcp transport");
  if (datagrams && (n.datagram_bytes < 256 || n.datagram_bytes > 65535))
    bad("notify: datagram_bytes out of range 256..65535");
  if (!n.vm_definition.empty() && n.image_kind != "vm") bad("notify: vm_definition on a '" + n.image_kind + "' image");
  if (n.vm_definition.size() > (256u << 10)) bad("notify: vm_definition longer than 256 KiB");
  if (n.compressed_pages && (!datagrams || n.page_size > kMaxCompressiblePage))
    bad("notify: page_compression needs datagrams and pages of at most 16 KiB");
  return n;
}

std::vector<std::byte> encode_ready(const Ready& r) {
  return json_body({{"bulk_endpoints", r.bulk_endpoints},
                    {"datagram_bytes", r.datagram_bytes},
                    {"reliable_endpoint", r.reliable_endpoint}});
}

Ready decode_ready(std::span<const std::byte> body) {
  const char* m = "ready";
  const auto j = parse_json(body, m);
  Ready r;
  r.bulk_endpoints = endpoints(j, m);
  r.datagram_bytes = field<std::uint32_t>(j, m, "datagram_bytes");
  if (r.datagram_bytes > 65535) bad("ready: datagram_bytes out of range");
  if (j.contains("reliable_endpoint"))
    r.reliable_endpoint = check_text(field<std::string>(j, m, "reliable_endpoint"), m, "reliable_endpoint", 256);
  return r;
}

std::vector<std::byte> encode_query(const std::string& what, const nlohmann::json& args) {
  return json_body({{"query", what}, {"args", args}});
}

std::string decode_query(std::span<const std::byte> body, nlohmann::json& args, std::initializer_list<std::string_view> known) {
  if (body.size() > kMaxQueryBytes) bad("query: longer than " + std::to_string(kMaxQueryBytes) + " bytes");
  const auto j = parse_json(body, "query");
  const std::string what = field<std::string>(j, "query", "query");
  if (std::find(known.begin(), known.end(), what) == known.end()) bad("query: unknown query '" + printable(what, 64) + "'");
  const auto a = j.find("args");
  if (a == j.end() || !a->is_object()) bad("query: field 'args' must be an object");
  args = *a;
  return what;
}

std::vector<std::byte> encode_answer(const nlohmann::json& answer) { return json_body(answer); }

nlohmann::json decode_answer(std::span<const std::byte> body) {
  auto j = parse_json(body, "answer");
  if (!j.is_object()) bad("answer: must be a JSON object");
  return j;
}

std::vector<std::byte> encode_abort(const std::string& reason) { return json_body({{"reason", reason}}); }

std::string decode_abort(std::span<const std::byte> body) {
  const auto j = parse_json(body, "abort");
  return check_text(field<std::string>(j, "abort", "reason"), "abort", "reason", 4096);
}

// ---- binary control messages -------------------------------------------------------------------

std::vector<std::byte> encode_progress(const Progress& p) {
  std::vector<std::byte> out;
  ByteWriter w(out);
  w.put(p.receiver_time_ns);
  w.put(p.datagrams);
  w.put(p.bytes);
  w.put(p.next_seq);
  w.put(p.min_owd_ns);
  w.put(p.invalid);
  w.put(p.backlog_bytes);
  w.put(p.echo_send_time_ns);
  w.put(p.echo_hold_ns);
  return out;
}

Progress decode_progress(std::span<const std::byte> body) {
  ByteReader r(body, "progress");
  Progress p;
  p.receiver_time_ns = r.get<std::uint64_t>();
  p.datagrams = r.get<std::uint64_t>();
  p.bytes = r.get<std::uint64_t>();
  p.next_seq = r.get<std::uint64_t>();
  p.min_owd_ns = r.get<std::int64_t>();
  p.invalid = r.get<std::uint64_t>();
  p.backlog_bytes = r.get<std::uint64_t>();
  p.echo_send_time_ns = r.get<std::uint64_t>();
  p.echo_hold_ns = r.get<std::uint64_t>();
  r.expect_end();
  return p;
}

std::vector<std::byte> encode_round_end(const RoundEnd& re) {
  std::vector<std::byte> out;
  ByteWriter w(out);
  w.put(re.round);
  w.put(re.next_seq);
  return out;
}

RoundEnd decode_round_end(std::span<const std::byte> body) {
  ByteReader r(body, "round-end");
  RoundEnd re;
  re.round = r.get<std::uint32_t>();
  re.next_seq = r.get<std::uint64_t>();
  r.expect_end();
  return re;
}

namespace {
constexpr std::uint8_t kSetRaw = 0;
constexpr std::uint8_t kSetRuns = 1;
}  // namespace

std::vector<std::byte> encode_page_set(std::uint32_t round, const Bitmap& set) {
  // Runs: varint gap from the previous run's end, varint length.
  std::vector<std::byte> runs;
  ByteWriter rw(runs);
  std::uint64_t prev_end = 0, i = set.next_set(0);
  const std::size_t raw_bytes = set.words().size() * 8;
  while (i < set.size() && runs.size() <= raw_bytes) {
    std::uint64_t e = i;
    while (e < set.size() && set.test(e)) ++e;
    rw.put_varint(i - prev_end);
    rw.put_varint(e - i);
    prev_end = e;
    i = set.next_set(e);
  }
  std::vector<std::byte> out;
  ByteWriter w(out);
  w.put(round);
  w.put(set.size());
  if (runs.size() <= raw_bytes) {
    w.put(kSetRuns);
    w.put_bytes(runs);
  } else {
    w.put(kSetRaw);
    w.put_bytes(std::as_bytes(set.words()));
  }
  return out;
}

std::uint32_t decode_page_set(std::span<const std::byte> body, std::uint64_t page_count, Bitmap& out) {
  ByteReader r(body, "page set");
  const auto round = r.get<std::uint32_t>();
  const auto bits = r.get<std::uint64_t>();
  if (bits != page_count) bad("page set: covers " + std::to_string(bits) + " pages, image has " + std::to_string(page_count));
  out = Bitmap(page_count);
  const auto format = r.get<std::uint8_t>();
  if (format == kSetRaw) {
    const auto raw = r.get_bytes(out.words().size() * 8);
    std::memcpy(out.words().data(), raw.data(), raw.size());
    if (page_count % 64 && (out.words().back() >> (page_count % 64)))
      bad("page set: bits set past the last page");
  } else if (format == kSetRuns) {
    std::uint64_t pos = 0;
    while (r.remaining()) {
      const auto gap = r.get_varint(), len = r.get_varint();
      if (gap > page_count - pos || len > page_count - pos - gap || len == 0) bad("page set: run out of range");
      pos += gap;
      for (std::uint64_t k = 0; k < len; ++k) out.set(pos + k);
      pos += len;
    }
  } else {
    bad("page set: unknown format " + std::to_string(format));
  }
  r.expect_end();
  return round;
}

std::vector<std::byte> encode_round_begin(std::uint32_t round, const Bitmap& pages, const Bitmap& known_zero) {
  // Two page sets; the first with its length, since a set of runs ends where its body does.
  const auto first = encode_page_set(round, pages);
  const auto second = encode_page_set(round, known_zero);
  std::vector<std::byte> out;
  out.reserve(4 + first.size() + second.size());
  ByteWriter w(out);
  w.put(static_cast<std::uint32_t>(first.size()));
  w.put_bytes(first);
  w.put_bytes(second);
  return out;
}

RoundBegin decode_round_begin(std::span<const std::byte> body, std::uint64_t page_count) {
  ByteReader r(body, "round-begin");
  const auto first_bytes = r.get<std::uint32_t>();
  const auto first = r.get_bytes(first_bytes);
  const auto second = r.get_bytes(r.remaining());
  RoundBegin b;
  b.round = decode_page_set(first, page_count, b.pages);
  if (decode_page_set(second, page_count, b.known_zero) != b.round)
    bad("round-begin: its two page sets name different rounds");
  if (!b.known_zero.is_subset_of(b.pages)) bad("round-begin: pages known zero that the round does not send");
  return b;
}

std::vector<std::byte> encode_pages_header(std::uint32_t round, std::span<const std::uint64_t> pages) {
  std::vector<std::byte> out;
  out.reserve(8 + pages.size() * 8);
  ByteWriter w(out);
  w.put(round);
  w.put(static_cast<std::uint32_t>(pages.size()));
  for (auto p : pages) w.put(p);
  return out;
}

std::uint32_t decode_pages_header(std::span<const std::byte> body, std::uint64_t page_count,
                                  std::vector<std::uint64_t>& pages_out) {
  ByteReader r(body, "pages");
  const auto round = r.get<std::uint32_t>();
  const auto count = r.get<std::uint32_t>();
  if (count == 0 || count > kMaxPagesPerMessage)
    bad("pages: count " + std::to_string(count) + " outside 1.." + std::to_string(kMaxPagesPerMessage));
  pages_out.resize(count);
  for (auto& p : pages_out) {
    p = r.get<std::uint64_t>();
    if (p >= page_count) bad("pages: page " + std::to_string(p) + " >= page count " + std::to_string(page_count));
  }
  r.expect_end();
  return round;
}

std::vector<std::byte> encode_written(std::uint32_t round, std::span<const std::uint64_t> pages,
                                      std::span<const AeadTag> tags) {
  std::vector<std::byte> out = encode_pages_header(round, pages);
  for (const auto& t : tags) out.insert(out.end(), t.begin(), t.end());
  return out;
}

std::uint32_t decode_written(std::span<const std::byte> body, std::uint64_t page_count, std::vector<std::uint64_t>& pages_out,
                             std::vector<AeadTag>& tags_out) {
  // The count sits after the round, as in a pages header; the header is validated in full below.
  if (body.size() < 8) bad("written: truncated");
  std::uint32_t n = 0;
  std::memcpy(&n, body.data() + 4, 4);
  if (n == 0 || n > kMaxPagesPerMessage) bad("written: count " + std::to_string(n) + " outside 1.." + std::to_string(kMaxPagesPerMessage));
  const std::size_t pages_len = 8 + std::size_t{n} * 8;
  if (body.size() != pages_len + std::size_t{n} * kAeadTagBytes) bad("written: " + std::to_string(body.size()) + " bytes for " + std::to_string(n) + " pages and tags");
  const std::uint32_t round = decode_pages_header(body.first(pages_len), page_count, pages_out);
  tags_out.resize(n);
  for (std::uint32_t i = 0; i < n; ++i) std::memcpy(tags_out[i].data(), body.data() + pages_len + i * kAeadTagBytes, kAeadTagBytes);
  return round;
}

std::vector<std::byte> encode_image_window(const ImageWindow& w) {
  std::vector<std::byte> out;
  ByteWriter wr(out);
  wr.put(w.address);
  wr.put(w.key);
  wr.put(w.bytes);
  return out;
}

ImageWindow decode_image_window(std::span<const std::byte> body) {
  ByteReader r(body, "image-window");
  ImageWindow w;
  w.address = r.get<std::uint64_t>();
  w.key = r.get<std::uint32_t>();
  w.bytes = r.get<std::uint64_t>();
  r.expect_end();
  if (w.bytes == 0) bad("image-window: an empty window");
  if (w.address + w.bytes < w.address) bad("image-window: address + bytes wraps around");
  return w;
}

std::vector<std::byte> encode_bind(const Bind& b) {
  std::vector<std::byte> out;
  ByteWriter w(out);
  w.put(b.session);
  w.put_bytes(std::as_bytes(std::span(b.challenge)));
  return out;
}

Bind decode_bind(std::span<const std::byte> body) {
  ByteReader r(body, "bind");
  Bind b;
  b.session = r.get<std::uint64_t>();
  std::memcpy(b.challenge.data(), r.get_bytes(b.challenge.size()).data(), b.challenge.size());
  r.expect_end();
  return b;
}

std::vector<std::byte> encode_u64(std::uint64_t v) {
  std::vector<std::byte> out;
  ByteWriter(out).put(v);
  return out;
}

std::uint64_t decode_u64(std::span<const std::byte> body, const char* what) {
  ByteReader r(body, what);
  const auto v = r.get<std::uint64_t>();
  r.expect_end();
  return v;
}

std::vector<std::byte> encode_digest(const Digest& d) {
  std::vector<std::byte> out(d.size());
  std::memcpy(out.data(), d.data(), d.size());
  return out;
}

Digest decode_digest(std::span<const std::byte> body) {
  ByteReader r(body, "digest");
  Digest d;
  std::memcpy(d.data(), r.get_bytes(d.size()).data(), d.size());
  r.expect_end();
  return d;
}

std::vector<std::byte> encode_verify(const Verify& v) {
  std::vector<std::byte> out;
  ByteWriter w(out);
  w.put<std::uint8_t>(v.ok ? 1 : 0);
  w.put_bytes(std::as_bytes(std::span(v.digest)));
  w.put(v.missing_pages);
  return out;
}

Verify decode_verify(std::span<const std::byte> body) {
  ByteReader r(body, "verify");
  Verify v;
  const auto ok = r.get<std::uint8_t>();
  if (ok > 1) bad("verify: ok flag must be 0 or 1");
  v.ok = ok == 1;
  std::memcpy(v.digest.data(), r.get_bytes(v.digest.size()).data(), v.digest.size());
  v.missing_pages = r.get<std::uint64_t>();
  r.expect_end();
  return v;
}

std::vector<std::byte> encode_device_state_header(std::uint64_t offset) { return encode_u64(offset); }

std::uint64_t decode_device_state_header(std::span<const std::byte> body) { return decode_u64(body, "device-state"); }

std::vector<std::byte> encode_device_state_end(const DeviceStateEnd& e) {
  std::vector<std::byte> out;
  ByteWriter w(out);
  w.put(e.bytes);
  w.put_bytes(std::as_bytes(std::span(e.digest)));
  return out;
}

DeviceStateEnd decode_device_state_end(std::span<const std::byte> body) {
  ByteReader r(body, "device-state-end");
  DeviceStateEnd e;
  e.bytes = r.get<std::uint64_t>();
  std::memcpy(e.digest.data(), r.get_bytes(e.digest.size()).data(), e.digest.size());
  r.expect_end();
  return e;
}

StreamDigest::StreamDigest() : state_(XXH3_createState()) {
  if (!state_) throw Error(ErrorKind::io, "out of memory for a stream digest");
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}

StreamDigest::~StreamDigest() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void StreamDigest::update(std::span<const std::byte> bytes) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), bytes.data(), bytes.size());
}

Digest StreamDigest::digest() const {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(static_cast<const XXH3_state_t*>(state_)));
  Digest d;
  std::memcpy(d.data(), c.digest, d.size());
  return d;
}

// ---- datagrams ---------------------------------------------------------------------------------

DatagramLayout make_layout(std::size_t page_size, std::size_t datagram_bytes) {
  // The notify's bounds (decode_notify): a power of two from 512 bytes to 2 MiB.
  if (page_size < 512 || page_size > (2u << 20) || (page_size & (page_size - 1)))
    throw Error(ErrorKind::usage,
                "page size " + std::to_string(page_size) + " is not a power of two from 512 to 2 MiB");
  DatagramLayout l;
  l.page_size = page_size;
  l.datagram_bytes = datagram_bytes;
  const std::size_t overhead = kDatagramHeaderBytes + kDatagramTagBytes;
  const std::size_t room = datagram_bytes > overhead ? datagram_bytes - overhead : 0;
  if (room >= kEntryBytes + page_size) {
    l.pages_per_datagram = static_cast<std::uint16_t>(std::min<std::size_t>(kMaxEntries, room / (kEntryBytes + page_size)));
    l.chunk_count = 1;
    l.chunk_bytes = static_cast<std::uint32_t>(page_size);
    return l;
  }
  if (room <= kEntryBytes + 64)
    throw Error(ErrorKind::usage, "datagram size " + std::to_string(datagram_bytes) + " is too small for page chunks");
  const std::size_t max_chunk = room - kEntryBytes;
  const std::size_t chunks = (page_size + max_chunk - 1) / max_chunk;
  if (chunks > kMaxChunks)
    throw Error(ErrorKind::usage, "page size " + std::to_string(page_size) + " needs " + std::to_string(chunks) +
                                      " chunks at datagram size " + std::to_string(datagram_bytes) + " (max " +
                                      std::to_string(kMaxChunks) + ")");
  l.pages_per_datagram = 0;
  l.chunk_count = static_cast<std::uint16_t>(chunks);
  l.chunk_bytes = static_cast<std::uint32_t>((page_size + chunks - 1) / chunks);
  return l;
}

namespace {
// Field offsets in the 48-byte datagram header.
constexpr std::size_t kOffMagic = 0, kOffVersion = 4, kOffFlags = 5, kOffEntries = 6, kOffSession = 8,
                      kOffSeq = 16, kOffTime = 24, kOffRound = 32, kOffChunkIndex = 36, kOffChunkCount = 38,
                      kOffPayload = 40, kOffLane = 44;

template <typename T>
void store(std::byte* p, std::size_t off, T v) {
  std::memcpy(p + off, &v, sizeof v);
}
template <typename T>
T load(const std::byte* p, std::size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof v);
  return v;
}
}  // namespace

std::size_t encode_datagram_head(std::byte* out, const DatagramHeader& h, std::span<const DatagramEntry> entries) {
  store<std::uint32_t>(out, kOffMagic, kDatagramMagic);
  store<std::uint8_t>(out, kOffVersion, static_cast<std::uint8_t>(kProtocolVersion));
  store<std::uint8_t>(out, kOffFlags, h.flags);
  store<std::uint16_t>(out, kOffEntries, static_cast<std::uint16_t>(entries.size()));
  store(out, kOffSession, h.session);
  store(out, kOffSeq, h.seq);
  store(out, kOffTime, h.send_time_ns);
  store(out, kOffRound, h.round);
  store(out, kOffChunkIndex, h.chunk_index);
  store(out, kOffChunkCount, h.chunk_count);
  store(out, kOffPayload, h.payload_bytes);
  store(out, kOffLane, h.lane);
  std::size_t off = kDatagramHeaderBytes;
  for (const auto& e : entries) {
    store<std::uint64_t>(out, off,
                         e.page | (e.zero ? kZeroPageFlag : 0) |
                             (e.compressed ? kCompressedPageFlag |
                                                 (std::uint64_t{e.compressed} << kCompressedLengthShift)
                                           : 0));
    store<std::uint64_t>(out, off + 8, e.hash);
    off += kEntryBytes;
  }
  return off;
}

DatagramEntry DatagramView::entry_at(std::size_t i) const {
  const std::byte* e = entries + i * kEntryBytes;
  const auto word = load<std::uint64_t>(e, 0);
  DatagramEntry out;
  out.page = word & kPageIndexMask;
  out.zero = (word & kZeroPageFlag) != 0;
  out.hash = load<std::uint64_t>(e, 8);
  const auto length = static_cast<std::uint16_t>((word >> kCompressedLengthShift) & kCompressedLengthMask);
  if (word & kCompressedPageFlag) out.compressed = length;
  // A compressed flag without a length, or a length without the flag, is malformed too.
  out.reserved_bits = (word & kCompressedPageFlag) ? length == 0 : length != 0;
  return out;
}

const char* to_string(DropReason r) {
  switch (r) {
    case DropReason::none: return "none";
    case DropReason::too_short: return "too-short";
    case DropReason::bad_magic: return "bad-magic";
    case DropReason::bad_version: return "bad-version";
    case DropReason::wrong_session: return "wrong-session";
    case DropReason::bad_shape: return "bad-shape";
    case DropReason::out_of_range: return "out-of-range";
    case DropReason::future_round: return "future-round";
    case DropReason::replayed: return "replayed";
    case DropReason::bad_mac: return "bad-mac";
    case DropReason::stale_round: return "stale-round";
    case DropReason::bad_hash: return "bad-hash";
    case DropReason::bad_compressed: return "bad-compressed";
    case DropReason::broken_record: return "broken-record";
    case DropReason::count_: break;
  }
  return "unknown";
}

DropReason decode_datagram(std::span<const std::byte> bytes, std::uint64_t session, std::uint32_t lane,
                           const DatagramLayout& layout, DatagramProtection protection, DatagramView& out) {
  const std::byte* p = bytes.data();
  if (bytes.size() < kDatagramHeaderBytes + kDatagramTagBytes) return DropReason::too_short;
  // Larger than the session's datagrams: no sender of this session made it (and the receiver's
  // scratch is sized by the layout).
  if (bytes.size() > layout.datagram_bytes) return DropReason::bad_shape;
  if (load<std::uint32_t>(p, kOffMagic) != kDatagramMagic) return DropReason::bad_magic;
  if (load<std::uint8_t>(p, kOffVersion) != kProtocolVersion) return DropReason::bad_version;
  auto& h = out.header;
  h.flags = load<std::uint8_t>(p, kOffFlags);
  h.entry_count = load<std::uint16_t>(p, kOffEntries);
  h.session = load<std::uint64_t>(p, kOffSession);
  h.seq = load<std::uint64_t>(p, kOffSeq);
  h.send_time_ns = load<std::uint64_t>(p, kOffTime);
  h.round = load<std::uint32_t>(p, kOffRound);
  h.chunk_index = load<std::uint16_t>(p, kOffChunkIndex);
  h.chunk_count = load<std::uint16_t>(p, kOffChunkCount);
  h.payload_bytes = load<std::uint32_t>(p, kOffPayload);
  h.lane = load<std::uint32_t>(p, kOffLane);

  const std::uint8_t want_flags = protection == DatagramProtection::aead ? kDatagramEncrypted : 0;
  const bool page_record = (h.flags & kDatagramPageRecord) != 0;
  if ((h.flags & ~kDatagramPageRecord) != want_flags || h.lane != lane) return DropReason::bad_shape;
  if (h.entry_count == 0 || h.entry_count > kMaxEntries) return DropReason::bad_shape;
  const std::size_t head_len = kDatagramHeaderBytes + std::size_t{h.entry_count} * kEntryBytes;
  if (bytes.size() < head_len + kDatagramTagBytes || bytes.size() - head_len - kDatagramTagBytes != h.payload_bytes)
    return DropReason::bad_shape;
  if (h.session != session) return DropReason::wrong_session;
  out.head = bytes.first(kDatagramHeaderBytes);
  out.sealed_entries = bytes.subspan(kDatagramHeaderBytes, head_len - kDatagramHeaderBytes);
  out.entries = nullptr;
  out.payload = bytes.subspan(head_len, h.payload_bytes);
  out.tag = p + bytes.size() - kDatagramTagBytes;

  if (h.chunk_count != 1) {
    // A chunk of one page: of the page cut as the layout says, or of its compressed bytes (fewer
    // chunks; check_datagram_entries checks the lengths once the entry is open).
    if (!layout.chunked() || h.chunk_count > layout.chunk_count || h.chunk_index >= h.chunk_count ||
        h.entry_count != 1 || h.payload_bytes == 0 || h.payload_bytes > layout.chunk_bytes)
      return DropReason::bad_shape;
    // A page record's chunks: the page cut as the layout says, every one padded to chunk_bytes.
    if (page_record && (h.chunk_count != layout.chunk_count || h.payload_bytes != layout.chunk_bytes))
      return DropReason::bad_shape;
    return DropReason::none;
  }
  if (page_record) return DropReason::bad_shape;
  // Whole pages, zero pages and compressed pages: the entries say how the payload divides
  // (check_datagram_entries, once they are open).
  if (h.chunk_index != 0 || h.payload_bytes > std::size_t{h.entry_count} * layout.page_size) return DropReason::bad_shape;
  return DropReason::none;
}

DropReason check_datagram_entries(const DatagramView& v, std::uint64_t page_count, std::uint32_t lanes,
                                  const DatagramLayout& layout, bool compressed_pages) {
  if (v.header.chunk_count != 1) {
    const auto e = v.entry_at(0);
    const auto& h = v.header;
    if (e.zero || e.reserved_bits) return DropReason::bad_shape;
    if (e.compressed) {
      // Its compressed bytes cut into chunk_bytes pieces: exactly as many as they need, fewer than
      // the page's own.
      const std::size_t n = (std::size_t{e.compressed} + layout.chunk_bytes - 1) / layout.chunk_bytes;
      const std::size_t last = e.compressed - (n - 1) * std::size_t{layout.chunk_bytes};
      if (!compressed_pages || e.compressed >= layout.page_size || n != h.chunk_count || n >= layout.chunk_count ||
          h.payload_bytes != (h.chunk_index + 1u < n ? layout.chunk_bytes : last))
        return DropReason::bad_shape;
      if (h.flags & kDatagramPageRecord) return DropReason::bad_shape;
    } else if (!(h.flags & kDatagramPageRecord)) {  // a raw chunk travels only inside its page's record
      return DropReason::bad_shape;
    }
    if (e.page >= page_count || lane_of_page(e.page, lanes) != v.header.lane) return DropReason::out_of_range;
    return DropReason::none;
  }
  std::size_t payload = 0;
  for (std::size_t i = 0; i < v.header.entry_count; ++i) {
    const auto e = v.entry_at(i);
    if (e.reserved_bits || (e.compressed && (!compressed_pages || e.zero || e.compressed >= layout.page_size)))
      return DropReason::bad_shape;
    // In chunked mode a whole page does not fit a datagram: only zero and compressed ones do.
    if (layout.chunked() && !e.zero && !e.compressed) return DropReason::bad_shape;
    if (e.page >= page_count || lane_of_page(e.page, lanes) != v.header.lane) return DropReason::out_of_range;
    payload += e.payload_bytes(layout.page_size);
  }
  return payload == v.header.payload_bytes ? DropReason::none : DropReason::bad_shape;
}

}  // namespace hymig
