#include "fuzz/decoder_table.hpp"

#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/numeric_host.hpp"
#include "core/socket_address.hpp"
#include "policy/drain_request.hpp"
#include "policy/host_capacity.hpp"
#include "protocol/wire.hpp"
#include "tcp/tcp_frame.hpp"
#ifdef HYMIG_HAVE_VERBS
#include "verbs/rc_wire.hpp"
#include "verbs/ud_endpoint.hpp"
#endif

namespace hymig::fuzz {

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz: broken promise: %s\n", what);
  std::abort();
}

namespace {

using Bytes = std::span<const std::byte>;

std::uint64_t take_u64(Bytes& in, unsigned bytes) {
  std::uint64_t v = 0;
  for (unsigned i = 0; i < bytes && !in.empty(); ++i) {
    v |= std::uint64_t(in.front()) << (8 * i);
    in = in.subspan(1);
  }
  return v;
}

std::string_view text_of(Bytes in) { return {reinterpret_cast<const char*>(in.data()), in.size()}; }

// encode(decode(x)) is a fixed point: decoding it again and encoding gives the same bytes.
template <typename Decode, typename Encode>
void round_trip(Bytes in, Decode decode, Encode encode) {
  const std::vector<std::byte> once = encode(decode(in));
  FUZZ_CHECK(encode(decode(Bytes(once))) == once);
}

// ---- frame headers ------------------------------------------------------------------------------

void frame_header(Bytes in) {
  if (in.size() < kFrameHeaderBytes) throw Error(ErrorKind::protocol, "short");
  const FrameLimits limits;
  const std::span<const std::byte, kFrameHeaderBytes> head(in.data(), kFrameHeaderBytes);
  const FrameHeader h = decode_frame_header(head, limits);
  FUZZ_CHECK(h.body_len <= limits.max_body && h.payload_len <= limits.max_payload);
  // Only the canonical encoding is accepted: every field of the header was checked.
  const auto again = encode_frame_header(h);
  FUZZ_CHECK(std::memcmp(again.data(), in.data(), kFrameHeaderBytes) == 0);
}

#ifdef HYMIG_HAVE_VERBS  // the RC channel's codecs: without rdma-core (HYMIG_WITH_VERBS=OFF) not in the table
void rc_frame_header(Bytes in) {
  const FrameLimits limits;
  const verbs::RcFrameHeader h = verbs::decode_rc_frame_header(in, limits);
  FUZZ_CHECK(in.size() >= verbs::kRcFrameHeaderBytes);
  FUZZ_CHECK(h.body_len <= limits.max_body && h.payload_len <= limits.max_payload);
  const auto again = verbs::encode_rc_frame_header(h);
  FUZZ_CHECK(std::memcmp(again.data(), in.data(), verbs::kRcFrameHeaderBytes) == 0);
}

void rc_connect(Bytes in) {
  const verbs::RcConnectInfo c = verbs::decode_rc_connect(in);
  FUZZ_CHECK(c.recv_slots >= 1 && c.slot_bytes >= 1024 && c.slot_bytes <= 16u * 1024 * 1024);
  const auto again = verbs::encode_rc_connect(c);
  FUZZ_CHECK(verbs::decode_rc_connect(again).slot_bytes == c.slot_bytes);
}
#endif

// ---- handshake and queries (JSON) ---------------------------------------------------------------

void hello(Bytes in) {
  round_trip(
      in,
      [](Bytes b) {
        nlohmann::json caps;
        Hello h = decode_hello(b, caps);
        return std::pair{h, caps};
      },
      [](const std::pair<Hello, nlohmann::json>& p) { return encode_hello(p.first, p.second); });
}

void notify(Bytes in) {
  const Notify n = decode_notify(in);
  FUZZ_CHECK(is_safe_image_name(n.image_name));
  FUZZ_CHECK(n.lanes >= 1 && n.lanes <= kMaxLanes && n.page_size > 0);
  FUZZ_CHECK(n.bulk_endpoints.size() <= kMaxLanes);
  round_trip(in, decode_notify, encode_notify);
}

void ready(Bytes in) { round_trip(in, decode_ready, encode_ready); }

void query(Bytes in) {
  round_trip(
      in,
      [](Bytes b) {
        nlohmann::json args;
        std::string what = decode_query(b, args, {"status", "drain", "drain_cancel"});
        return std::pair{what, args};
      },
      [](const std::pair<std::string, nlohmann::json>& q) { return encode_query(q.first, q.second); });
}

void answer(Bytes in) { round_trip(in, decode_answer, encode_answer); }

void abort_message(Bytes in) {
  const std::string reason = decode_abort(in);
  FUZZ_CHECK(is_printable_text(reason));
  round_trip(in, decode_abort, encode_abort);
}

// A daemon's answer to `status` as `hymig status` and `hymig drain` read it.
void capacity(Bytes in) {
  const nlohmann::json a = decode_answer(in);
  if (!a.is_object() || !a.contains("capacity")) throw Error(ErrorKind::protocol, "no capacity");
  const HostCapacity c = capacity_from_json(a.at("capacity"));
  const HostCapacity again = capacity_from_json(to_json(c));
  FUZZ_CHECK(to_json(again) == to_json(c));
  (void)room_for(c, 0, 1u << 30);
  for (const auto& pool : c.hugepages) (void)room_for(c, pool.page_bytes, 1u << 30);
}

// A `drain` query as the daemon turns it into the command line of its child `hymig drain`.
void drain_request(Bytes in) {
  nlohmann::json args;
  if (decode_query(in, args, {"drain"}) != "drain") throw Error(ErrorKind::protocol, "not drain");
  const std::vector<std::string> argv = drain_command_line("/usr/bin/hymig", "/etc/hymig/cluster.key", "", args);
  FUZZ_CHECK(argv.size() >= 2 && argv[0] == "/usr/bin/hymig" && argv[1] == "drain");
  // Every value sits behind its option: none of them can be an option of its own.
  for (std::size_t i = 2; i < argv.size(); ++i) {
    const bool option = argv[i].rfind("--", 0) == 0;
    const bool previous_option = argv[i - 1].rfind("--", 0) == 0;
    FUZZ_CHECK(option || previous_option);
  }
}

// ---- binary control messages ---------------------------------------------------------------------

void progress(Bytes in) { round_trip(in, decode_progress, encode_progress); }
void round_end(Bytes in) { round_trip(in, decode_round_end, encode_round_end); }
void image_window(Bytes in) { round_trip(in, decode_image_window, encode_image_window); }
void bind(Bytes in) { round_trip(in, decode_bind, encode_bind); }
void digest(Bytes in) { round_trip(in, decode_digest, encode_digest); }
void verify(Bytes in) { round_trip(in, decode_verify, encode_verify); }
void device_state_header(Bytes in) { round_trip(in, decode_device_state_header, encode_device_state_header); }
void device_state_end(Bytes in) { round_trip(in, decode_device_state_end, encode_device_state_end); }

// The first 2 bytes choose the image's page count (1..65536); the rest is the message body.
void page_set(Bytes in) {
  const std::uint64_t pages = 1 + take_u64(in, 2);
  Bitmap set;
  const std::uint32_t round = decode_page_set(in, pages, set);
  FUZZ_CHECK(set.size() == pages);
  const auto once = encode_page_set(round, set);
  Bitmap again;
  FUZZ_CHECK(decode_page_set(once, pages, again) == round && again.count() == set.count() && set.is_subset_of(again));
}

// The first 2 bytes choose the image's page count (1..65536); the rest is the message body.
void round_begin(Bytes in) {
  const std::uint64_t pages = 1 + take_u64(in, 2);
  const RoundBegin b = decode_round_begin(in, pages);
  FUZZ_CHECK(b.pages.size() == pages && b.known_zero.size() == pages && b.known_zero.is_subset_of(b.pages));
  const RoundBegin again = decode_round_begin(encode_round_begin(b.round, b.pages, b.known_zero), pages);
  FUZZ_CHECK(again.round == b.round && again.pages.count() == b.pages.count() &&
             again.known_zero.count() == b.known_zero.count() && b.known_zero.is_subset_of(again.known_zero));
}

// The first 8 bytes choose the page count; the rest is the body.
void pages_header(Bytes in) {
  const std::uint64_t pages = 1 + (take_u64(in, 8) & ((std::uint64_t{1} << 40) - 1));
  std::vector<std::uint64_t> list;
  const std::uint32_t round = decode_pages_header(in, pages, list);
  FUZZ_CHECK(!list.empty() && list.size() <= kMaxPagesPerMessage);
  for (auto p : list) FUZZ_CHECK(p < pages);
  std::vector<std::uint64_t> again;
  FUZZ_CHECK(decode_pages_header(encode_pages_header(round, list), pages, again) == round && again == list);
}

void written(Bytes in) {
  const std::uint64_t pages = 1 + (take_u64(in, 8) & ((std::uint64_t{1} << 40) - 1));
  std::vector<std::uint64_t> list;
  std::vector<AeadTag> tags;
  const std::uint32_t round = decode_written(in, pages, list, tags);
  FUZZ_CHECK(!list.empty() && list.size() <= kMaxPagesPerMessage && tags.size() == list.size());
  for (auto p : list) FUZZ_CHECK(p < pages);
  std::vector<std::uint64_t> list2;
  std::vector<AeadTag> tags2;
  FUZZ_CHECK(decode_written(encode_written(round, list, tags), pages, list2, tags2) == round && list2 == list && tags2 == tags);
}

// ---- datagrams (the header and entries; fuzz/datagram_receive.cpp goes through authentication) --

// The first byte chooses the session's shape: datagram size, protection, compression, lanes.
void datagram(Bytes in) {
  const auto shape = static_cast<unsigned>(take_u64(in, 1));
  static const std::size_t sizes[] = {65507, 9000, 1472, 1024};
  const DatagramLayout layout = make_layout(4096, sizes[shape & 3]);
  const auto protection = (shape >> 2) & 1 ? DatagramProtection::mac : DatagramProtection::aead;
  const bool compressed = (shape >> 3) & 1;
  const std::uint32_t lanes = 1 + ((shape >> 4) & 3);
  const std::uint64_t page_count = 1 + take_u64(in, 2);
  DatagramView v;
  DropReason r = decode_datagram(in, 77, 0, layout, protection, v);
  if (r != DropReason::none) throw Error(ErrorKind::protocol, to_string(r));
  const auto inside = [&](std::span<const std::byte> s) {
    return s.data() >= in.data() && s.data() + s.size() <= in.data() + in.size();
  };
  FUZZ_CHECK(inside(v.head) && inside(v.sealed_entries) && inside(v.payload));
  FUZZ_CHECK(v.tag + kDatagramTagBytes == in.data() + in.size());
  FUZZ_CHECK(v.payload.size() <= layout.datagram_bytes && v.header.entry_count <= kMaxEntries);
  v.entries = reinterpret_cast<const std::byte*>(v.sealed_entries.data());  // as if opened
  r = check_datagram_entries(v, page_count, lanes, layout, compressed);
  if (r != DropReason::none) throw Error(ErrorKind::protocol, to_string(r));
  for (std::size_t i = 0; i < v.header.entry_count; ++i) {
    const DatagramEntry e = v.entry_at(i);
    FUZZ_CHECK(e.page < page_count && lane_of_page(e.page, lanes) == 0 && !e.reserved_bits);
    FUZZ_CHECK(e.compressed < layout.page_size);
  }
}

// ---- endpoints a peer names (notify's and ready's bulk endpoints, the RC endpoint) --------------

void endpoint(Bytes in) {
  const std::string_view text = text_of(in);
  bool accepted = false;
  try {
    const auto addresses = resolve_numeric_host_port(text, SOCK_DGRAM);  // AI_NUMERICHOST: no lookup
    FUZZ_CHECK(!addresses.empty());
    for (const auto& a : addresses) FUZZ_CHECK(a.length > 0 && a.length <= sizeof(sockaddr_storage));
    (void)same_numeric_host(text, "10.0.0.1");
    accepted = true;
  } catch (const Error&) {
  }
#ifdef HYMIG_HAVE_VERBS  // without rdma-core a peer's UD endpoint is never parsed
  try {
    const verbs::UdEndpoint e = verbs::parse_ud_endpoint(text);
    FUZZ_CHECK(verbs::parse_ud_endpoint(verbs::format_ud_endpoint(e)).qpn == e.qpn);
    accepted = true;
  } catch (const Error&) {
  }
#endif
  if (!accepted) throw Error(ErrorKind::protocol, "no endpoint");
}

}  // namespace

const std::vector<Decoder>& decoders() {
  static const std::vector<Decoder> table = {
      {"frame_header", "decode_frame_header (the TCP channel's 16-byte frame header)", frame_header},
#ifdef HYMIG_HAVE_VERBS
      {"rc_frame_header", "verbs::decode_rc_frame_header (the RC channel's frame header)", rc_frame_header},
      {"rc_connect", "verbs::decode_rc_connect (rdma_cm private data)", rc_connect},
#endif
      {"hello", "decode_hello (JSON, with the capability set)", hello},
      {"notify", "decode_notify (JSON)", notify},
      {"ready", "decode_ready (JSON)", ready},
      {"query", "decode_query (JSON: status, drain, drain_cancel)", query},
      {"answer", "decode_answer (JSON)", answer},
      {"abort", "decode_abort (a reason text)", abort_message},
      {"capacity", "decode_answer + capacity_from_json (a daemon's status answer)", capacity},
      {"drain_request", "decode_query + drain_command_line (a drain query as the daemon's child command line)",
       drain_request},
      {"progress", "decode_progress", progress},
      {"round_end", "decode_round_end", round_end},
      {"image_window", "decode_image_window", image_window},
      {"bind", "decode_bind", bind},
      {"digest", "decode_digest", digest},
      {"verify", "decode_verify", verify},
      {"device_state_header", "decode_device_state_header", device_state_header},
      {"device_state_end", "decode_device_state_end", device_state_end},
      {"page_set", "decode_page_set (missing's and round-report's page sets)", page_set},
      {"round_begin", "decode_round_begin (a round's page set and the pages of it known zero)", round_begin},
      {"pages_header", "decode_pages_header (the final delta's pages messages)", pages_header},
      {"written", "decode_written (one-sided final-delta writes and their tags)", written},
      {"datagram", "decode_datagram + check_datagram_entries (header and entries in clear)", datagram},
      {"endpoint", "resolve_numeric_host_port + verbs::parse_ud_endpoint (endpoints a peer names)", endpoint},
  };
  return table;
}

const Decoder* find_decoder(std::string_view name) {
  for (const auto& d : decoders())
    if (name == d.name) return &d;
  return nullptr;
}

}  // namespace hymig::fuzz
