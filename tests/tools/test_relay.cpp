// hymig-test-relay: a wire made of a user-space process between two network interfaces, which
// impairs what crosses it: the loss patterns netem would give, on a kernel without netem. Used by
// tests/integration/loss_patterns.sh through tests/lib/netlab.sh (netlab_up_relay). Never installed;
// it only forwards frames between the two interfaces it is given (inside the test's namespaces).
//
//   hymig-test-relay --offload-off IFACE...
//       Turns off checksum offload, scatter-gather, TSO, GSO and GRO on each IFACE (SIOCETHTOOL),
//       and checks they are off. On a veth the kernel otherwise hands 64 KB GSO super-frames with
//       unfinished checksums across; with them off every frame is one IP packet no larger than the
//       MTU with its checksum made, so an impairment acts on datagrams one by one.
//
//   hymig-test-relay --a IFACE --b IFACE --seed S [--match udp|ip|all]
//                    [--ge P,R,LG,LB] [--reorder P,D] [--dup P] [--stats FILE]
//       Forwards every frame that arrives on A out of B and every frame that arrives on B out of A
//       (AF_PACKET raw sockets, in batches), and applies to the frames from A to B that match:
//         --ge P,R,LG,LB  Gilbert–Elliott loss: a two-state Markov chain stepped once per frame,
//                         Good->Bad with probability P, Bad->Good with R; a frame is dropped with
//                         probability LG in Good and LB in Bad (mean stay in Bad 1/R frames,
//                         stationary loss (P*LB + R*LG)/(P+R)).
//         --reorder P,D   a frame not dropped is held back with probability P and sent right after
//                         the next D matching frames that go from A to B (or once it waited 10 ms).
//         --dup P         a frame not dropped is sent twice (back to back) with probability P.
//       --match: udp = IPv4 UDP (the default: hymig's datagram channel), ip = IPv4 UDP and TCP,
//       all = every frame. ARP and anything unmatched passes untouched, in order. The decisions
//       come from one seeded generator (xoshiro256**), in the order frames arrive.
//       Prints "relay ready A<->B" once both sockets are bound. On SIGTERM or SIGINT it sends what
//       it holds, prints one JSON object of counters on stdout (and into --stats FILE) and exits 0;
//       SIGUSR1 prints the counters without exiting. Counters: frames each way, matched, dropped,
//       drop_runs (runs of consecutive dropped matching frames), longest_run, bad_entries (Good->Bad
//       transitions), held, sent_late (held frames sent after the D frames behind them),
//       released_idle (held frames sent after 10 ms, or at exit, with no D frames behind), duplicated, oversize
//       (frames larger than the egress MTU: offloads were on), send_errors, kernel_drops (frames the
//       packet sockets' queues dropped: loss the relay did not choose).
//
// Exit status: 0, 1 on an I/O error, 2 on a usage error.
#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/unique_fd.hpp"
#include "tests/tools/seeded_rng.hpp"

namespace {

using hymig::UniqueFd;
using Clock = std::chrono::steady_clock;

constexpr const char* kProg = "hymig-test-relay";
constexpr std::size_t kBatch = 64;
constexpr std::size_t kFrameMax = 65536 + 64;
constexpr std::size_t kMaxHeld = 256;
constexpr auto kHoldLimit = std::chrono::milliseconds(10);

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_io(const std::string& what) { throw IoError(what + ": " + std::strerror(errno)); }

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_dump = 0;
void on_stop(int) { g_stop = 1; }
void on_dump(int) { g_dump = 1; }

using hymig::test_tools::Rng;  // tests/tools/seeded_rng.hpp

double parse_probability(const std::string& s, const std::string& what) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || !(v >= 0 && v <= 1)) throw UsageError(what + ": '" + s + "' is not a probability 0..1");
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

// ---- offloads ----------------------------------------------------------------------------------

struct Offload {
  std::uint32_t get, set;
  const char* name;
};
// Order matters: what depends on another feature goes first.
constexpr Offload kOffloads[] = {{ETHTOOL_GGRO, ETHTOOL_SGRO, "gro"},
                                 {ETHTOOL_GGSO, ETHTOOL_SGSO, "gso"},
                                 {ETHTOOL_GTSO, ETHTOOL_STSO, "tso"},
                                 {ETHTOOL_GSG, ETHTOOL_SSG, "sg"},
                                 {ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM, "tx-checksum"}};

std::uint32_t ethtool_feature(int fd, const std::string& ifname, std::uint32_t cmd, std::uint32_t value, bool set) {
  struct ethtool_value v {};
  v.cmd = cmd;
  v.data = value;
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
  ifr.ifr_data = reinterpret_cast<char*>(&v);
  if (::ioctl(fd, SIOCETHTOOL, &ifr) != 0 && !(set && errno == EOPNOTSUPP))
    throw_io(std::string("SIOCETHTOOL ") + (set ? "set" : "get") + " on " + ifname);
  return v.data;
}

int offload_off(const std::vector<std::string>& ifaces) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_io("socket for SIOCETHTOOL");
  for (const auto& ifname : ifaces) {
    if (ifname.empty() || ifname.size() >= IFNAMSIZ) throw UsageError("bad interface name '" + ifname + "'");
    for (const Offload& o : kOffloads) ethtool_feature(fd.get(), ifname, o.set, 0, true);
    for (const Offload& o : kOffloads)
      if (ethtool_feature(fd.get(), ifname, o.get, 0, false) != 0)
        throw IoError(ifname + ": " + o.name + " is still on after turning it off");
    std::printf("%s: gro gso tso sg tx-checksum off\n", ifname.c_str());
  }
  return 0;
}

// ---- the relay ---------------------------------------------------------------------------------

struct Options {
  std::string a, b;
  std::uint64_t seed = 0;
  bool seeded = false;
  std::string match = "udp";
  bool ge = false;
  double ge_p = 0, ge_r = 1, ge_lg = 0, ge_lb = 0;
  double reorder_p = 0;
  unsigned reorder_depth = 0;
  double dup_p = 0;
  std::string stats_file;
};

struct Counters {
  std::uint64_t a_to_b = 0, b_to_a = 0, matched = 0, dropped = 0, drop_runs = 0, longest_run = 0, bad_entries = 0;
  std::uint64_t held = 0, sent_late = 0, released_idle = 0, duplicated = 0, oversize = 0, send_errors = 0, kernel_drops = 0;
};

class Port {
 public:
  Port(const std::string& ifname, int rcvbuf) : name_(ifname) {
    index_ = ::if_nametoindex(ifname.c_str());
    if (index_ == 0) throw_io("interface " + ifname);
    fd_ = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    if (!fd_) throw_io("AF_PACKET socket (needs CAP_NET_RAW)");
    int one = 1;
    // Our own transmissions on this interface are not frames to forward.
    if (::setsockopt(fd_.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0)
      throw_io("PACKET_IGNORE_OUTGOING on " + ifname);
    if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
      (void)::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
      (void)::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(index_);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) throw_io("bind AF_PACKET to " + ifname);
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
    if (::ioctl(fd_.get(), SIOCGIFMTU, &ifr) != 0) throw_io("SIOCGIFMTU " + ifname);
    mtu_ = static_cast<std::size_t>(ifr.ifr_mtu);
    buffers_.assign(kBatch, std::vector<unsigned char>(kFrameMax));
    for (std::size_t i = 0; i < kBatch; ++i) {
      iov_[i] = {buffers_[i].data(), kFrameMax};
      msgs_[i].msg_hdr = msghdr{};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      msgs_[i].msg_hdr.msg_name = &from_[i];
      msgs_[i].msg_hdr.msg_namelen = sizeof from_[i];
    }
  }

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  std::size_t mtu() const { return mtu_; }

  // Up to kBatch frames without waiting; frames()[i] valid until the next call.
  std::size_t receive() {
    for (std::size_t i = 0; i < kBatch; ++i) {
      msgs_[i].msg_hdr.msg_namelen = sizeof from_[i];
      msgs_[i].msg_len = 0;
    }
    const int n = ::recvmmsg(fd_.get(), msgs_, kBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
      throw_io("recvmmsg on " + name_);
    }
    return std::size_t(n);
  }
  const unsigned char* frame(std::size_t i) const { return buffers_[i].data(); }
  std::size_t length(std::size_t i) const { return msgs_[i].msg_len; }
  bool outgoing(std::size_t i) const { return from_[i].sll_pkttype == PACKET_OUTGOING; }

  // Frames the kernel dropped because this socket's queue was full (read and reset).
  std::uint64_t take_kernel_drops() {
    tpacket_stats st{};
    socklen_t len = sizeof st;
    if (::getsockopt(fd_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return 0;
    return st.tp_drops;
  }

 private:
  std::string name_;
  unsigned index_ = 0;
  std::size_t mtu_ = 0;
  UniqueFd fd_;
  std::vector<std::vector<unsigned char>> buffers_;
  iovec iov_[kBatch]{};
  mmsghdr msgs_[kBatch]{};
  sockaddr_ll from_[kBatch]{};
};

// Frames on their way out of one port: views into the receiving port's buffers or into held copies.
class Outbox {
 public:
  void add(const unsigned char* data, std::size_t len) {
    iov_.push_back({const_cast<unsigned char*>(data), len});
  }
  // Sends everything queued; frames the kernel refuses are counted and dropped.
  void flush(Port& out, Counters& c) {
    if (iov_.empty()) return;
    msgs_.assign(iov_.size(), mmsghdr{});
    for (std::size_t i = 0; i < iov_.size(); ++i) {
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    std::size_t done = 0;
    while (done < msgs_.size()) {
      const int n = ::sendmmsg(out.fd(), msgs_.data() + done, unsigned(msgs_.size() - done), 0);
      if (n > 0) {
        done += std::size_t(n);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == ENOBUFS) {
        pollfd p{out.fd(), POLLOUT, 0};
        ::poll(&p, 1, 10);
        continue;
      }
      ++c.send_errors;  // e.g. EMSGSIZE for a frame above the MTU: that frame is lost
      ++done;
    }
    iov_.clear();
  }
  std::size_t size() const { return iov_.size(); }

 private:
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
};

struct Held {
  std::vector<unsigned char> bytes;
  unsigned countdown;
  Clock::time_point since;
};

class Relay {
 public:
  explicit Relay(const Options& o) : o_(o), rng_(o.seed), a_(o.a, 32 << 20), b_(o.b, 32 << 20) {}

  int run() {
    std::printf("relay ready %s<->%s (mtu %zu/%zu)\n", a_.name().c_str(), b_.name().c_str(), a_.mtu(), b_.mtu());
    std::fflush(stdout);
    while (!g_stop) {
      if (g_dump) {
        g_dump = 0;
        print_counters();
      }
      pollfd p[2] = {{a_.fd(), POLLIN, 0}, {b_.fd(), POLLIN, 0}};
      const int timeout_ms = held_.empty() ? 200 : 2;
      const int rc = ::poll(p, 2, timeout_ms);
      if (rc < 0 && errno != EINTR) throw_io("poll");
      if (rc > 0 && (p[0].revents & POLLIN)) forward_a_to_b();
      if (rc > 0 && (p[1].revents & POLLIN)) forward_b_to_a();
      release_stale();
    }
    // What is held goes out: a reordered frame is late, not lost.
    for (auto& h : held_) out_ab_.add(h.bytes.data(), h.bytes.size());
    c_.released_idle += held_.size();
    out_ab_.flush(b_, c_);
    held_.clear();
    close_run();
    print_counters();
    return 0;
  }

 private:
  // IPv4 with the protocol --match asks for (untagged Ethernet II frames).
  bool matches(const unsigned char* f, std::size_t len) const {
    if (o_.match == "all") return true;
    if (len < 14 + 20) return false;
    const std::uint16_t type = std::uint16_t(f[12] << 8 | f[13]);
    if (type != ETH_P_IP) return false;
    const unsigned char proto = f[14 + 9];
    return proto == IPPROTO_UDP || (o_.match == "ip" && proto == IPPROTO_TCP);
  }

  void close_run() {
    if (run_ == 0) return;
    ++c_.drop_runs;
    c_.longest_run = std::max<std::uint64_t>(c_.longest_run, run_);
    run_ = 0;
  }

  // Gilbert–Elliott: step the chain, then draw the loss of this frame in the state it is in.
  bool ge_drops() {
    if (!o_.ge) return false;
    if (bad_) {
      if (rng_.chance(o_.ge_r)) bad_ = false;
    } else if (rng_.chance(o_.ge_p)) {
      bad_ = true;
      ++c_.bad_entries;
    }
    return rng_.chance(bad_ ? o_.ge_lb : o_.ge_lg);
  }

  // Counts down the held frames by one frame sent past them; those at zero go out now.
  // (released_ keeps their bytes until the batch is flushed: a deque's elements stay put.)
  void tick_held() {
    for (auto it = held_.begin(); it != held_.end();) {
      if (--it->countdown == 0) {
        released_.push_back(std::move(it->bytes));
        out_ab_.add(released_.back().data(), released_.back().size());
        it = held_.erase(it);
        ++c_.sent_late;
      } else {
        ++it;
      }
    }
  }

  void forward_a_to_b() {
    released_.clear();
    const std::size_t n = a_.receive();
    for (std::size_t i = 0; i < n; ++i) {
      if (a_.outgoing(i)) continue;
      const unsigned char* f = a_.frame(i);
      const std::size_t len = a_.length(i);
      ++c_.a_to_b;
      if (len > b_.mtu() + 14) ++c_.oversize;
      if (!matches(f, len)) {
        out_ab_.add(f, len);
        continue;
      }
      ++c_.matched;
      if (ge_drops()) {
        ++c_.dropped;
        ++run_;
        continue;
      }
      close_run();
      const bool dup = rng_.chance(o_.dup_p);
      if (dup) ++c_.duplicated;
      if (o_.reorder_depth > 0 && held_.size() < kMaxHeld && rng_.chance(o_.reorder_p)) {
        ++c_.held;
        held_.push_back({std::vector<unsigned char>(f, f + len), o_.reorder_depth, Clock::now()});
        // The duplicate (if any) goes now: the copies arrive apart.
        if (dup) out_ab_.add(f, len);
        continue;
      }
      out_ab_.add(f, len);
      if (dup) out_ab_.add(f, len);
      tick_held();
    }
    out_ab_.flush(b_, c_);
    released_.clear();
    c_.kernel_drops += a_.take_kernel_drops();
  }

  void forward_b_to_a() {
    const std::size_t n = b_.receive();
    for (std::size_t i = 0; i < n; ++i) {
      if (b_.outgoing(i)) continue;
      ++c_.b_to_a;
      out_ba_.add(b_.frame(i), b_.length(i));
    }
    out_ba_.flush(a_, c_);
    c_.kernel_drops += b_.take_kernel_drops();
  }

  // A held frame whose successors do not come (the stream paused) goes out after kHoldLimit.
  void release_stale() {
    const auto now = Clock::now();
    std::vector<Held> late;
    for (auto it = held_.begin(); it != held_.end();) {
      if (now - it->since >= kHoldLimit) {
        late.push_back(std::move(*it));
        it = held_.erase(it);
      } else {
        ++it;
      }
    }
    if (late.empty()) return;
    for (auto& h : late) out_ab_.add(h.bytes.data(), h.bytes.size());
    c_.released_idle += late.size();
    out_ab_.flush(b_, c_);
  }

  void print_counters() {
    char line[1024];
    std::snprintf(line, sizeof line,
                  "{\"a_to_b\":%llu,\"b_to_a\":%llu,\"matched\":%llu,\"dropped\":%llu,\"drop_runs\":%llu,"
                  "\"longest_run\":%llu,\"bad_entries\":%llu,\"held\":%llu,\"sent_late\":%llu,\"released_idle\":%llu,"
                  "\"duplicated\":%llu,"
                  "\"oversize\":%llu,\"send_errors\":%llu,\"kernel_drops\":%llu}",
                  (unsigned long long)c_.a_to_b, (unsigned long long)c_.b_to_a, (unsigned long long)c_.matched,
                  (unsigned long long)c_.dropped, (unsigned long long)c_.drop_runs,
                  (unsigned long long)c_.longest_run, (unsigned long long)c_.bad_entries,
                  (unsigned long long)c_.held, (unsigned long long)c_.sent_late, (unsigned long long)c_.released_idle,
                  (unsigned long long)c_.duplicated, (unsigned long long)c_.oversize,
                  (unsigned long long)c_.send_errors, (unsigned long long)c_.kernel_drops);
    std::printf("%s\n", line);
    std::fflush(stdout);
    if (!o_.stats_file.empty()) {
      std::ofstream f(o_.stats_file, std::ios::trunc);
      f << line << "\n";
    }
  }

  Options o_;
  Rng rng_;
  Port a_, b_;
  Outbox out_ab_, out_ba_;
  std::deque<Held> held_;
  std::deque<std::vector<unsigned char>> released_;
  Counters c_;
  bool bad_ = false;
  std::uint64_t run_ = 0;
};

Options parse(int argc, char** argv, std::vector<std::string>& offload_ifaces) {
  Options o;
  bool offload = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--offload-off") {
      offload = true;
      for (++i; i < argc; ++i) offload_ifaces.push_back(argv[i]);
      if (offload_ifaces.empty()) throw UsageError("--offload-off needs interface names");
    } else if (arg == "--a") {
      o.a = value();
    } else if (arg == "--b") {
      o.b = value();
    } else if (arg == "--seed") {
      const std::string v = value();
      try {
        std::size_t used = 0;
        o.seed = std::stoull(v, &used);
        if (used != v.size()) throw UsageError("");
      } catch (const std::exception&) {
        throw UsageError("--seed: '" + v + "' is not a number");
      }
      o.seeded = true;
    } else if (arg == "--match") {
      o.match = value();
      if (o.match != "udp" && o.match != "ip" && o.match != "all") throw UsageError("--match must be udp, ip or all");
    } else if (arg == "--ge") {
      const auto f = split(value(), ',');
      if (f.size() != 4) throw UsageError("--ge takes P,R,LG,LB");
      o.ge = true;
      o.ge_p = parse_probability(f[0], "--ge P");
      o.ge_r = parse_probability(f[1], "--ge R");
      o.ge_lg = parse_probability(f[2], "--ge LG");
      o.ge_lb = parse_probability(f[3], "--ge LB");
      if (o.ge_r == 0) throw UsageError("--ge R must be above 0 (the chain would stay in Bad for ever)");
    } else if (arg == "--reorder") {
      const auto f = split(value(), ',');
      if (f.size() != 2) throw UsageError("--reorder takes P,D");
      o.reorder_p = parse_probability(f[0], "--reorder P");
      try {
        o.reorder_depth = static_cast<unsigned>(std::stoul(f[1]));
      } catch (const std::exception&) {
        throw UsageError("--reorder D: '" + f[1] + "' is not a number");
      }
      if (o.reorder_depth == 0 || o.reorder_depth > 1000) throw UsageError("--reorder D must be 1..1000");
    } else if (arg == "--dup") {
      o.dup_p = parse_probability(value(), "--dup");
    } else if (arg == "--stats") {
      o.stats_file = value();
    } else if (arg == "-h" || arg == "--help") {
      std::printf("see the header of tests/tools/test_relay.cpp\n");
      std::exit(0);
    } else {
      throw UsageError("unknown argument '" + arg + "'");
    }
  }
  if (offload) return o;
  if (o.a.empty() || o.b.empty()) throw UsageError("--a IFACE and --b IFACE are required");
  if (o.a == o.b) throw UsageError("--a and --b must differ");
  if (!o.seeded) throw UsageError("--seed S is required (every decision comes from it)");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> offload_ifaces;
    const Options o = parse(argc, argv, offload_ifaces);
    if (!offload_ifaces.empty()) return offload_off(offload_ifaces);
    struct sigaction sa {};
    sa.sa_handler = on_stop;  // no SA_RESTART: poll() returns EINTR and the loop sees the flag
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    sa.sa_handler = on_dump;
    ::sigaction(SIGUSR1, &sa, nullptr);
    Relay relay(o);
    return relay.run();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: usage error: %s\n", kProg, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", kProg, e.what());
    return 1;
  }
}
