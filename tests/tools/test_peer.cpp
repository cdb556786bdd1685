// hymig-test-peer: the hostile or broken peers the security tests put next to a real `hymig serve`
// and `hymig migrate` (tests/net/*.sh). Never installed; traffic only to the addresses it is given
// (the tests give loopback).
//
//   relay --listen HOST:PORT --to HOST:PORT [--flip-at N] [--direction s2d|d2s]
//       A TCP relay between a source and `hymig serve` that does not hold the key. With --flip-at,
//       it flips one bit of the byte at offset N of the chosen direction's stream (past the
//       handshake), as an on-path attacker would. Prints "relay listening on HOST:PORT", then
//       "relay flipped byte N" when it did. Runs until both sides closed.
//
//   spoof --seconds S [--max N]
//       Watches loopback (AF_PACKET) for hymig datagrams (magic HYMD) and, for each of the first N
//       it sees, injects from the sender's own address and port (a raw IP socket): an exact copy
//       (a replay), a copy with one payload bit flipped (tampered), a copy claiming the next round
//       (unannounced), and a copy with the payload replaced by random bytes (forged). Ends after S
//       seconds, N datagrams, or 2 s without one once the stream began; prints what it saw and
//       sent. Needs root.
//
//   rst-flood --to HOST:PORT --count N
//       N connections, each reset (SO_LINGER 0) right after the handshake, before the daemon can
//       accept it: a reset waiting in the accept backlog.
//
//   dribble --to HOST:PORT --seconds S
//       Connects and sends one byte of a TLS ClientHello per second: a client that would hold a
//       daemon serving handshakes one at a time. Prints how long the daemon kept it.
//
//   deep-hello | oversized-notify | huge-notify --to HOST:PORT --key-file FILE
//       Authenticates (it holds the key), then sends a hello nested 30,000 levels deep; or a valid
//       hello and a notify body over the daemon's limit; or a valid hello and a notify announcing a
//       2^40-page image. Prints the daemon's answer (an abort, a closed connection).
//
//   notify-domain --to HOST:PORT --key-file FILE --xml FILE [--name N --uuid U] [--xml-name N]
//       Authenticates as a source and announces a libvirt domain whose definition is FILE (as
//       `hymig migrate --domain` would send it, transient), to a `serve --libvirt`. Prints the
//       daemon's answer (it must refuse what its policy does not allow, before libvirt starts
//       anything).
//
//   fake-destination --listen HOST:PORT --key-file FILE --bulk-endpoint HOST:PORT
//       Plays a destination that holds the key and names another host's datagram endpoint in
//       ready. Prints what the source did (it must end the session).
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/unique_fd.hpp"
#include "protocol/handshake.hpp"
#include "protocol/wire.hpp"
#include "security/cluster_key.hpp"
#include "tcp/tcp_connect.hpp"
#include "tcp/tcp_listener.hpp"

namespace hymig::testpeer {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "hymig-test-peer: " << why << " (see the header of tests/tools/test_peer.cpp)\n";
  std::exit(2);
}

struct Args {
  std::map<std::string, std::string> opt;
  std::string get(const std::string& k) const {
    auto it = opt.find(k);
    if (it == opt.end()) usage("missing --" + k);
    return it->second;
  }
  std::string get_or(const std::string& k, const std::string& d) const {
    auto it = opt.find(k);
    return it == opt.end() ? d : it->second;
  }
};

// ---- relay -------------------------------------------------------------------------------------

int relay(const Args& a) {
  TcpListener listener = TcpListener::listen(a.get("listen"));
  std::cout << "relay listening on " << listener.local_address() << std::endl;
  const long flip_at = std::stol(a.get_or("flip-at", "-1"));
  const bool s2d = a.get_or("direction", "s2d") == "s2d";
  auto in = listener.accept(60s);
  if (!in) usage("nobody connected within 60 s");
  auto out = connect_tcp(a.get("to"), 10s);
  const int fds[2] = {in->socket_fd(), out->socket_fd()};  // [0] the source, [1] the destination
  long offset[2] = {0, 0};
  bool open[2] = {true, true};
  std::vector<unsigned char> buf(65536);
  while (open[0] || open[1]) {
    pollfd p[2] = {{fds[0], short(open[0] ? POLLIN : 0), 0}, {fds[1], short(open[1] ? POLLIN : 0), 0}};
    if (::poll(p, 2, 1000) < 0) break;
    for (int side = 0; side < 2; ++side) {
      if (!open[side] || !(p[side].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::recv(fds[side], buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        open[side] = false;
        ::shutdown(fds[1 - side], SHUT_WR);
        continue;
      }
      const bool flipping_here = (side == 0) == s2d;
      if (flipping_here && flip_at >= offset[side] && flip_at < offset[side] + n) {
        buf[std::size_t(flip_at - offset[side])] ^= 0x04;
        std::cout << "relay flipped byte " << flip_at << std::endl;
      }
      offset[side] += n;
      for (ssize_t sent = 0; sent < n;) {
        const ssize_t k = ::send(fds[1 - side], buf.data() + sent, std::size_t(n - sent), MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
          pollfd w{fds[1 - side], POLLOUT, 0};
          ::poll(&w, 1, 1000);
          continue;
        }
        if (k <= 0) {
          open[0] = open[1] = false;
          break;
        }
        sent += k;
      }
    }
  }
  std::cout << "relay done: " << offset[0] << " bytes source->destination, " << offset[1] << " back" << std::endl;
  return 0;
}

// ---- spoof -------------------------------------------------------------------------------------

std::uint16_t ip_checksum(const void* data, std::size_t len) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len & 1) sum += p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

int spoof(const Args& a) {
  const auto seconds = std::chrono::seconds(std::stol(a.get_or("seconds", "10")));
  const long max = std::stol(a.get_or("max", "200"));
  UniqueFd cap(::socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP)));
  if (!cap) throw_errno("AF_PACKET socket (root needed)");
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_IP);
  ll.sll_ifindex = static_cast<int>(::if_nametoindex("lo"));
  if (::bind(cap.get(), reinterpret_cast<sockaddr*>(&ll), sizeof ll) != 0) throw_errno("bind to lo");
  UniqueFd raw(::socket(AF_INET, SOCK_RAW, IPPROTO_RAW));
  if (!raw) throw_errno("raw socket (root needed)");
  std::mt19937_64 rng(7);
  std::vector<unsigned char> pkt(70000);
  long seen = 0, sent = 0;
  std::uint32_t sport_seen = 0;
  std::vector<std::uint16_t> ours;  // IP ids of what we injected: the capture sees those too
  const auto end = Clock::now() + seconds;
  auto last_seen = Clock::now();
  auto inject = [&](const iphdr& ip, const udphdr& udp, const std::vector<unsigned char>& payload) {
    std::vector<unsigned char> out(sizeof(iphdr) + sizeof(udphdr) + payload.size());
    iphdr h = ip;
    h.tot_len = htons(static_cast<std::uint16_t>(out.size()));
    h.id = static_cast<std::uint16_t>(rng());
    ours.push_back(h.id);
    h.frag_off = 0;
    h.check = 0;
    h.check = htons(ip_checksum(&h, sizeof h));
    udphdr u = udp;
    u.len = htons(static_cast<std::uint16_t>(sizeof(udphdr) + payload.size()));
    u.check = 0;  // IPv4: no checksum
    std::memcpy(out.data(), &h, sizeof h);
    std::memcpy(out.data() + sizeof h, &u, sizeof u);
    std::memcpy(out.data() + sizeof h + sizeof u, payload.data(), payload.size());
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = ip.daddr;
    if (::sendto(raw.get(), out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == ssize_t(out.size())) ++sent;
  };
  while (Clock::now() < end && seen < max) {
    // Done once the stream has been quiet for 2 s after it began (the migration ended).
    if (seen > 0 && Clock::now() - last_seen > 2s) break;
    pollfd p{cap.get(), POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    sockaddr_ll from{};
    socklen_t fl = sizeof from;
    const ssize_t n = ::recvfrom(cap.get(), pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n < ssize_t(sizeof(iphdr) + sizeof(udphdr) + 48)) continue;
    if (from.sll_pkttype == PACKET_OUTGOING) continue;  // loopback shows each packet twice
    iphdr ip;
    std::memcpy(&ip, pkt.data(), sizeof ip);
    if (ip.protocol != IPPROTO_UDP || ip.ihl != 5) continue;
    if (std::find(ours.begin(), ours.end(), ip.id) != ours.end()) continue;
    udphdr udp;
    std::memcpy(&udp, pkt.data() + 20, sizeof udp);
    const std::size_t len = std::size_t(n) - 28;
    std::vector<unsigned char> payload(pkt.begin() + 28, pkt.begin() + 28 + std::ptrdiff_t(len));
    std::uint32_t magic;
    std::memcpy(&magic, payload.data(), 4);
    if (magic != kDatagramMagic) continue;
    ++seen;
    last_seen = Clock::now();
    sport_seen = ntohs(udp.source);
    inject(ip, udp, payload);  // replayed
    auto tampered = payload;
    tampered[tampered.size() - 20] ^= 0x01;  // in the payload (or the last entry), before the tag
    inject(ip, udp, tampered);
    auto future = payload;
    std::uint32_t round;
    std::memcpy(&round, future.data() + 32, 4);
    round += 1;
    std::memcpy(future.data() + 32, &round, 4);
    inject(ip, udp, future);
    auto forged = payload;
    std::uint64_t seq;
    std::memcpy(&seq, forged.data() + 16, 8);
    seq += 1u << 20;  // a fresh number inside the key epoch: it reaches the tag check
    std::memcpy(forged.data() + 16, &seq, 8);
    std::uint16_t entries;
    std::memcpy(&entries, forged.data() + 6, 2);
    // Entries kept (in range), payload and tag random: it reaches the tag check and fails it.
    for (std::size_t i = 48 + std::size_t{entries} * 16; i < forged.size(); ++i) forged[i] = static_cast<unsigned char>(rng());
    inject(ip, udp, forged);
  }
  std::cout << "spoof: saw " << seen << " hymig datagrams (from port " << sport_seen << "), injected " << sent << std::endl;
  return seen > 0 ? 0 : 1;
}

// ---- connections that misbehave ----------------------------------------------------------------

int rst_flood(const Args& a) {
  const long count = std::stol(a.get_or("count", "50"));
  const SocketAddress to = resolve_host_port(a.get("to"), SOCK_STREAM, false).front();
  long reset = 0;
  for (long i = 0; i < count; ++i) {
    UniqueFd s(::socket(to.family(), SOCK_STREAM, 0));
    if (::connect(s.get(), to.get(), to.length) != 0) continue;
    linger l{1, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ++reset;  // closing now sends RST: the daemon finds a dead connection in its backlog
  }
  std::cout << "rst-flood: reset " << reset << " connections" << std::endl;
  return 0;
}

int dribble(const Args& a) {
  const auto seconds = std::stol(a.get_or("seconds", "20"));
  auto c = connect_tcp(a.get("to"), 5s);
  // The start of a TLS ClientHello record: handshake, TLS 1.0 record version, a long length.
  const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
  const auto t0 = Clock::now();
  for (long i = 0; i < seconds; ++i) {
    const unsigned char b = hello[std::size_t(i) % sizeof hello];
    if (::send(c->socket_fd(), &b, 1, MSG_NOSIGNAL) != 1) break;
    pollfd p{c->socket_fd(), POLLIN, 0};
    if (::poll(&p, 1, 1000) > 0) {
      char x;
      if (::recv(c->socket_fd(), &x, 1, MSG_DONTWAIT) <= 0) break;
    }
  }
  std::cout << "dribble: the daemon kept the connection "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count() << " ms" << std::endl;
  return 0;
}

SecureSession authenticated(const Args& a, Role role, std::unique_ptr<TcpReliableChannel> tcp) {
  const ClusterKey key = load_cluster_key(a.get("key-file"));
  const int fd = tcp->socket_fd();
  return open_secure_session(std::move(tcp), fd, role, key, Clock::now() + 5s);
}

void report_answer(ReliableChannel& ch, std::chrono::seconds wait = 5s) {
  try {
    auto m = ch.receive(wait);
    if (!m) {
      std::cout << "answer: none within " << wait.count() << " s" << std::endl;
    } else if (static_cast<MsgType>(m->type) == MsgType::abort) {
      std::cout << "answer: abort: " << printable(decode_abort(m->body)) << std::endl;
    } else {
      std::cout << "answer: " << to_string(static_cast<MsgType>(m->type)) << std::endl;
    }
  } catch (const Error& e) {
    std::cout << "answer: connection ended: " << e.what() << std::endl;
  }
}

std::vector<std::byte> text(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

int hostile_source(const Args& a, const std::string& mode) {
  SecureSession s = authenticated(a, Role::source, connect_tcp(a.get("to"), 5s));
  if (mode == "deep-hello") {
    std::string deep = R"({"version":2,"role":"source","software":"x","caps":)";
    // 30,000 levels: under the 64 KiB a hello may have, so it reaches the parser (the review's
    // 60,000-level hello is now refused by its size alone).
    deep += std::string(30000, '[') + std::string(30000, ']') + "}";
    s.channel->send(wire(MsgType::hello), text(deep));
    report_answer(*s.channel);
    return 0;
  }
  s.peer = exchange_hello(*s.channel, Role::source, nlohmann::json::object(), 5s);
  if (mode == "oversized-notify") {
    s.channel->send(wire(MsgType::notify), std::vector<std::byte>(2u << 20, std::byte{'x'}));
  } else {  // huge-notify: valid, but 2^40 pages of 4 KiB
    Notify n;
    n.session = 1;
    n.page_size = 4096;
    n.page_count = std::uint64_t{1} << 40;
    n.image_bytes = n.page_count * n.page_size;
    n.image_kind = "synthetic";
    n.image_name = "huge";
    n.bulk = BulkTransport::tcp;
    n.verify = VerifyMode::full;
    s.channel->send(wire(MsgType::notify), encode_notify(n));
  }
  report_answer(*s.channel);
  return 0;
}

int notify_domain(const Args& a) {
  SecureSession s = authenticated(a, Role::source, connect_tcp(a.get("to"), 5s));
  s.peer = exchange_hello(*s.channel, Role::source, nlohmann::json::object(), 5s);
  std::ifstream in(a.get("xml"));
  std::stringstream xml;
  xml << in.rdbuf();
  const nlohmann::json def = {{"hypervisor", "libvirt"},
                              {"name", a.get_or("name", "hostile")},
                              {"uuid", a.get_or("uuid", "6d1d2a3e-0c44-4b52-9a1e-5f3b1c2d4e5f")},
                              {"xml", xml.str()},
                              {"persistent", false}};
  Notify n;
  n.session = 7;
  n.page_size = 4096;
  n.page_count = 65536;  // 256 MiB, the lane's guests' size
  n.image_bytes = n.page_count * n.page_size;
  n.image_kind = "vm";
  n.image_name = "hostile";
  n.bulk = BulkTransport::tcp;
  n.verify = VerifyMode::full;
  n.vm_definition = def.dump();
  s.channel->set_limits(1 << 20, 0);
  s.channel->send(wire(MsgType::notify), encode_notify(n));
  // A libvirt probing its QEMU's capabilities for the first time takes seconds under TCG.
  report_answer(*s.channel, 90s);
  return 0;
}

int fake_destination(const Args& a) {
  TcpListener listener = TcpListener::listen(a.get("listen"));
  std::cout << "fake destination listening on " << listener.local_address() << std::endl;
  auto c = listener.accept(60s);
  if (!c) usage("no source within 60 s");
  SecureSession s = authenticated(a, Role::destination, std::move(c));
  // The source's own capabilities, answered back as ours: a hello the source accepts.
  s.channel->set_limits(1 << 20, 0);
  nlohmann::json caps;
  decode_hello(expect(*s.channel, MsgType::hello, 5s).body, caps);
  Hello mine;
  mine.role = "destination";
  mine.software = "hymig-test-peer";
  s.channel->send(wire(MsgType::hello), encode_hello(mine, caps));
  const Notify n = decode_notify(expect(*s.channel, MsgType::notify, 5s).body);
  Ready r;
  r.bulk_endpoints = {a.get("bulk-endpoint")};
  r.datagram_bytes = n.datagram_bytes;
  s.channel->send(wire(MsgType::ready), encode_ready(r));
  std::cout << "fake destination: sent ready with bulk endpoint " << r.bulk_endpoints[0] << std::endl;
  report_answer(*s.channel);
  return 0;
}

}  // namespace
}  // namespace hymig::testpeer

int main(int argc, char** argv) {
  using namespace hymig::testpeer;
  if (argc < 2) usage("give a mode");
  Args a;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) usage("bad option " + k);
    a.opt[k.substr(2)] = argv[i + 1];
  }
  const std::string mode = argv[1];
  try {
    if (mode == "relay") return relay(a);
    if (mode == "spoof") return spoof(a);
    if (mode == "rst-flood") return rst_flood(a);
    if (mode == "dribble") return dribble(a);
    if (mode == "deep-hello" || mode == "oversized-notify" || mode == "huge-notify") return hostile_source(a, mode);
    if (mode == "fake-destination") return fake_destination(a);
    if (mode == "notify-domain") return notify_domain(a);
    usage("unknown mode " + mode);
  } catch (const std::exception& e) {
    std::cerr << "hymig-test-peer " << mode << ": " << e.what() << "\n";
    return 1;
  }
}
