// Writes the seed corpus (fuzz/corpus/NAME/) from the real encoders, so every fuzzer starts from
// messages a peer really sends: `hymig-fuzz-seeds fuzz/corpus` (docs/fuzzing.md). The corpus is
// kept in the tree; tests/unit/test_fuzz_corpus.cpp checks every decoder accepts its seeds.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/host_capacity.hpp"
#include "protocol/wire.hpp"
#include "tcp/tcp_frame.hpp"
#ifdef HYMIG_HAVE_VERBS
#include "verbs/rc_wire.hpp"
#include "verbs/ud_endpoint.hpp"
#endif

using namespace hymig;
namespace fs = std::filesystem;

namespace {

fs::path g_root;

void put(const std::string& target, const std::string& name, const std::vector<std::byte>& bytes) {
  const fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void put_text(const std::string& target, const std::string& name, const std::string& text) {
  put(target, name, std::vector<std::byte>(reinterpret_cast<const std::byte*>(text.data()),
                                           reinterpret_cast<const std::byte*>(text.data() + text.size())));
}

template <std::size_t N>
std::vector<std::byte> vec(const std::array<std::byte, N>& a) {
  return {a.begin(), a.end()};
}

// `bytes` little-endian bytes of v, then `body`: the harness's parameter prefix.
std::vector<std::byte> with_prefix(std::uint64_t v, unsigned bytes, const std::vector<std::byte>& body) {
  std::vector<std::byte> out;
  for (unsigned i = 0; i < bytes; ++i) out.push_back(std::byte((v >> (8 * i)) & 0xff));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Notify sample_notify() {
  Notify n;
  n.session = 0x1234;
  n.image_bytes = 64ull << 20;
  n.page_size = 4096;
  n.page_count = n.image_bytes / 4096;
  n.image_kind = "file";
  n.image_name = "guest.ram";
  n.bulk = BulkTransport::udp;
  n.lanes = 2;
  n.bulk_endpoints = {"10.0.0.1:40001", "10.0.0.1:40002"};
  n.datagram_bytes = 8952;
  n.verify = VerifyMode::full;
  return n;
}

// A datagram as it looks before sealing (the harness seals it): header, entries, payload, tag room.
std::vector<std::byte> clear_datagram(const DatagramHeader& h, const std::vector<DatagramEntry>& entries) {
  std::vector<std::byte> out(kDatagramHeaderBytes + entries.size() * kEntryBytes + h.payload_bytes + kDatagramTagBytes);
  encode_datagram_head(out.data(), h, entries);
  return out;
}

void datagrams() {
  DatagramHeader whole;
  whole.flags = kDatagramEncrypted;
  whole.session = 77;
  whole.entry_count = 2;
  whole.payload_bytes = 4096;
  const std::vector<DatagramEntry> two = {{3, false, 0x1111}, {4, true, 0x2222}};
  // shape byte 0: 65507-byte datagrams, aead, no compression, one lane; then page count - 1.
  put("datagram", "whole-and-zero", with_prefix(0, 1, with_prefix(63, 2, clear_datagram(whole, two))));
  DatagramHeader chunk = whole;
  chunk.entry_count = 1;
  chunk.chunk_count = 3;
  chunk.chunk_index = 1;
  const DatagramLayout l1472 = make_layout(4096, 1472);
  chunk.chunk_count = l1472.chunk_count;
  chunk.payload_bytes = l1472.chunk_bytes;
  chunk.flags = kDatagramEncrypted | kDatagramPageRecord;  // a raw chunk: part of its page's record
  put("datagram", "chunk-1472", with_prefix(2, 1, with_prefix(63, 2, clear_datagram(chunk, {{5, false, 0}}))));
  DatagramHeader comp = whole;
  comp.entry_count = 1;
  comp.payload_bytes = 100;
  DatagramEntry ce{6, false, 0};
  ce.compressed = 100;
  put("datagram", "compressed", with_prefix(8, 1, with_prefix(63, 2, clear_datagram(comp, {ce}))));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: hymig-fuzz-seeds CORPUS_DIR (fuzz/corpus)\n";
    return 2;
  }
  g_root = argv[1];

  put("frame_header", "pages", vec(encode_frame_header({12, 20, 4096})));
  put("frame_header", "hello", vec(encode_frame_header({1, 300, 0})));
#ifdef HYMIG_HAVE_VERBS  // without rdma-core these seeds are not written (the tree keeps them)
  put("rc_frame_header", "pages", vec(verbs::encode_rc_frame_header({12, 20, 4096})));
  put("rc_connect", "default", vec(verbs::encode_rc_connect({64, 65536, 0x1234, 0x7f0000001000})));
#endif

  const nlohmann::json caps = {{"version", kProtocolVersion},
                               {"bulk", {"udp", "tcp"}},
                               {"reliable", {"tcp"}},
                               {"link", {{"mtu", 1500}, {"speed_mbps", 10000}}}};
  put("hello", "source", encode_hello(Hello{kProtocolVersion, "source", "hymig 0.2.0"}, caps));
  put("notify", "udp-2-lanes", encode_notify(sample_notify()));
  Notify tcp = sample_notify();
  tcp.bulk = BulkTransport::tcp;
  tcp.lanes = 1;
  tcp.bulk_endpoints.clear();
  tcp.final_delta = FinalDeltaMethod::write;
  put("notify", "tcp", encode_notify(tcp));
  put("ready", "two-lanes", encode_ready(Ready{{"10.0.0.2:50001", "10.0.0.2:50002"}, 8952, ""}));
  put("query", "status", encode_query("status", nlohmann::json::object()));
  put("query", "drain", encode_query("drain", {{"targets", {"10.0.0.2:7470"}}, {"parallel", 2}}));
  put("drain_request", "full", encode_query("drain", {{"targets", {"10.0.0.2:7470", "10.0.0.3:7470"}}, {"parallel", 2},
                                                      {"retries", 1}, {"bandwidth", "1G"}, {"fallback", "native"},
                                                      {"dry_run", true}, {"progress_timeout", 150}}));
  put("answer", "status", encode_answer({{"version", "hymig 0.2.0"}, {"running", nlohmann::json::array()}}));
  HostCapacity c;
  c.memory_total = 24ull << 30;
  c.memory_available = 20ull << 30;
  c.hugepages = {{2u << 20, 512, 500}, {1u << 30, 2, 2}};
  c.ram_files_free = 12ull << 30;
  c.max_image_bytes = 24ull << 30;
  c.max_incoming = 2;
  c.incoming = 1;
  c.incoming_bytes = 1ull << 30;
  c.libvirt = true;
  put("capacity", "status", encode_answer({{"capacity", to_json(c)}}));
  put("abort", "reason", encode_abort("the store is full: 10 MiB free, 64 MiB needed"));

  Progress p{123456789, 1000, 4096000, 1001, 50000, 2, 65536, 123000000, 2000};
  put("progress", "sample", encode_progress(p));
  put("round_end", "sample", encode_round_end({2, 5000}));
  put("image_window", "sample", encode_image_window({0x7f0000000000, 0x42, 64ull << 20}));
  Bind b;
  b.session = 0x1234;
  for (std::size_t i = 0; i < b.challenge.size(); ++i) b.challenge[i] = static_cast<std::uint8_t>(i);
  put("bind", "sample", encode_bind(b));
  Digest d{};
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::uint8_t>(0xa0 + i);
  put("digest", "sample", encode_digest(d));
  put("verify", "ok", encode_verify({true, d, 0}));
  put("device_state_header", "sample", encode_device_state_header(262144));
  put("device_state_end", "sample", encode_device_state_end({300000, d}));

  Bitmap sparse(1000), dense(1000);
  sparse.set(3);
  sparse.set(500);
  for (std::uint64_t i = 0; i < 1000; i += 3) dense.set(i);
  put("page_set", "runs", with_prefix(999, 2, encode_page_set(1, sparse)));
  put("page_set", "bitmap", with_prefix(999, 2, encode_page_set(2, dense)));
  Bitmap none(1000), dense_zero = dense;
  for (std::uint64_t i = 0; i < 1000; i += 6) dense_zero.reset(i);
  put("round_begin", "first", with_prefix(999, 2, encode_round_begin(0, dense, dense_zero)));
  put("round_begin", "later", with_prefix(999, 2, encode_round_begin(3, sparse, none)));
  const std::uint64_t pages[] = {1, 7, 900};
  put("pages_header", "three", with_prefix(999, 8, encode_pages_header(kFinalRound, pages)));
  const AeadTag tags[3] = {};
  put("written", "three", with_prefix(999, 8, encode_written(kFinalRound, pages, tags)));
  datagrams();

  put_text("endpoint", "ipv4", "10.0.0.2:7470");
  put_text("endpoint", "ipv6", "[fd00::2]:7470");
#ifdef HYMIG_HAVE_VERBS
  verbs::UdEndpoint ud;
  ud.gid[10] = 0xff;
  ud.gid[11] = 0xff;
  ud.gid[12] = 10;
  ud.gid[15] = 2;
  ud.qpn = 0x11;
  ud.qkey = 0x11111111;
  ud.mtu = 4096;
  put_text("endpoint", "ud", verbs::format_ud_endpoint(ud));
#endif

  put_text("image_spec", "synthetic", "synthetic:size=1G,dirty-rate=256M,working-set=512M,seed=7,zero-fraction=0.5,compressible=0.3,writers=2");
  put_text("image_spec", "file", "file:/dev/shm/guest.ram,pause-pid=1234");
  put_text("config_file", "serve",
           "listen = 0.0.0.0:7470\nstore = /var/lib/hymig/images\nmax-incoming = 2\ntimeout = 10\n"
           "libvirt = true\nallow-path = /var/lib/libvirt/images\nallow-pool = default\nmetrics = 127.0.0.1:9470\n"
           "store-reserve = 1G\nmax-image-bytes = 64G\nkey-file = /etc/hymig/cluster.key\n");
  put_text("domain_policy", "guest",
           "<domain type='kvm'>\n  <name>guest1</name>\n  <uuid>6b1c3c52-8f3a-4b4e-9a0c-1d2e3f405162</uuid>\n"
           "  <memory unit='KiB'>262144</memory>\n  <memoryBacking><source type='file'/><access mode='shared'/>"
           "<hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>\n"
           "  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n"
           "  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
           "    <disk type='file' device='disk'><source file='/var/lib/libvirt/images/guest1.qcow2'/>"
           "<target dev='vda' bus='virtio'/></disk>\n"
           "    <serial type='pty'/>\n  </devices>\n</domain>\n");
  // FuzzedDataProvider reads its choices from the input's end: a few shapes to start from.
  put("datagram_receive", "small", std::vector<std::byte>(64, std::byte{0}));
  put("datagram_receive", "whole", with_prefix(0, 1, with_prefix(63, 2, std::vector<std::byte>(200, std::byte{1}))));
  std::cout << "hymig-fuzz-seeds: wrote the corpus under " << g_root << "\n";
  return 0;
}
