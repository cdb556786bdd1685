// The security core on its own: the cluster key file, the TLS 1.3 PSK handshake between two real
// sockets, the key schedule, AES-GCM records, the replay window, the sealed channel against every
// kind of tampering a relay could do, and the decoders' hard limits (JSON depth, varints, text).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "core/byte_codec.hpp"
#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "protocol/handshake.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/sealed_channel.hpp"
#include "protocol/wire.hpp"
#include "security/aead.hpp"
#include "security/cluster_key.hpp"
#include "security/epoch_keys.hpp"
#include "security/replay_window.hpp"
#include "security/tls_psk_handshake.hpp"
#include "tcp/tcp_connect.hpp"
#include "tcp/tcp_listener.hpp"
#include "testing/fake_channel.hpp"

namespace hymig {
namespace {

using namespace std::chrono_literals;

// A fresh directory for key files, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hymig-security-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (!d) throw std::runtime_error("mkdtemp");
    path_ = d;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  operator const std::string&() const { return path_; }  // NOLINT(google-explicit-constructor)

 private:
  std::string path_;
};

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

ErrorKind kind_of(const std::function<void()>& f, std::string* what = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (what) *what = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no error";
  return ErrorKind::io;
}

// ---- the cluster key ---------------------------------------------------------------------------

TEST(ClusterKey, WrittenPrivateLoadedBackNeverReplaced) {
  const TempDir tmp;
  const std::string& dir = tmp;
  const std::string path = dir + "/cluster.key";
  const ClusterKey k = write_new_cluster_key(path);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(load_cluster_key(path).bytes, k.bytes);
  EXPECT_EQ(load_cluster_key(path).id(), k.id());
  EXPECT_EQ(k.id().size(), 16u);
  EXPECT_EQ(kind_of([&] { write_new_cluster_key(path); }), ErrorKind::usage);
  EXPECT_EQ(load_cluster_key(path).bytes, k.bytes) << "an existing key was replaced";
  EXPECT_NE(write_new_cluster_key(dir + "/other.key").bytes, k.bytes);
}

TEST(ClusterKey, UnusableFilesAreRefusedNamingTheFix) {
  const TempDir tmp;
  const std::string& dir = tmp;
  std::string what;
  EXPECT_EQ(kind_of([&] { load_cluster_key(dir + "/missing.key"); }, &what), ErrorKind::usage);
  EXPECT_NE(what.find("hymig keygen"), std::string::npos) << what;
  auto write = [&](const std::string& name, const std::string& text, mode_t mode) {
    const std::string p = dir + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  };
  const std::string hex(64, 'a');
  EXPECT_EQ(kind_of([&] { load_cluster_key(write("open.key", hex + "\n", 0644)); }, &what), ErrorKind::usage);
  EXPECT_NE(what.find("chmod 600"), std::string::npos) << what;
  EXPECT_EQ(kind_of([&] { load_cluster_key(write("gw.key", hex, 0620)); }), ErrorKind::usage);
  EXPECT_EQ(kind_of([&] { load_cluster_key(write("short.key", hex.substr(2), 0600)); }, &what), ErrorKind::usage);
  EXPECT_NE(what.find("not a hymig cluster key"), std::string::npos) << what;
  EXPECT_EQ(kind_of([&] { load_cluster_key(write("junk.key", std::string(63, 'a') + "g", 0600)); }), ErrorKind::usage);
  EXPECT_EQ(kind_of([&] { load_cluster_key(write("long.key", hex + "00\n", 0600)); }), ErrorKind::usage);
  EXPECT_EQ(kind_of([&] { load_cluster_key(dir); }), ErrorKind::usage);  // a directory
  EXPECT_NO_THROW(load_cluster_key(write("ok.key", hex + "\r\n", 0400)));
}

TEST(ClusterKey, TheFileIsFoundByOptionThenEnvironmentThenDefault) {
  ::unsetenv(kKeyFileEnv);
  EXPECT_EQ(resolve_key_file(""), kDefaultKeyFile);
  ::setenv(kKeyFileEnv, "/tmp/x.key", 1);
  EXPECT_EQ(resolve_key_file(""), "/tmp/x.key");
  EXPECT_EQ(resolve_key_file("/y.key"), "/y.key");
  ::unsetenv(kKeyFileEnv);
}

// ---- the handshake -----------------------------------------------------------------------------

struct Handshakes {
  std::optional<SessionSecrets> source, destination;
  std::string source_error, destination_error, destination_detail;
  ErrorKind source_kind = ErrorKind::io, destination_kind = ErrorKind::io;
};

// Both ends over a real loopback TCP connection, each with its key, each on its own thread.
Handshakes handshake_pair(const ClusterKey& source_key, const ClusterKey& dest_key, std::chrono::milliseconds budget = 5s) {
  TcpListener listener = TcpListener::listen("127.0.0.1:0");
  Handshakes h;
  auto dest = std::async(std::launch::async, [&] {
    auto c = listener.accept(budget);
    if (!c) return;
    try {
      h.destination = tls_psk_handshake(c->socket_fd(), Role::destination, dest_key,
                                        std::chrono::steady_clock::now() + budget, &h.destination_detail);
    } catch (const Error& e) {
      h.destination_error = e.what();
      h.destination_kind = e.kind();
    }
  });
  auto c = connect_tcp(listener.local_address(), budget);
  try {
    h.source = tls_psk_handshake(c->socket_fd(), Role::source, source_key, std::chrono::steady_clock::now() + budget);
  } catch (const Error& e) {
    h.source_error = e.what();
    h.source_kind = e.kind();
  }
  c.reset();
  dest.get();
  return h;
}

ClusterKey random_key() {
  ClusterKey k;
  k.bytes = SessionSecrets::random_for_testing().exporter;
  return k;
}

TEST(TlsPskHandshake, TheSameKeyGivesBothEndsTheSameFreshSecret) {
  const ClusterKey key = random_key();
  const Handshakes a = handshake_pair(key, key);
  ASSERT_TRUE(a.source && a.destination) << a.source_error << " / " << a.destination_error;
  EXPECT_EQ(a.source->exporter, a.destination->exporter);
  const Handshakes b = handshake_pair(key, key);
  ASSERT_TRUE(b.source && b.destination);
  EXPECT_NE(a.source->exporter, b.source->exporter) << "two sessions must not share keys";
  // The derived keys agree per purpose and direction, and differ across both.
  EXPECT_EQ(a.source->traffic_key("control", Role::source).key, a.destination->traffic_key("control", Role::source).key);
  EXPECT_NE(a.source->traffic_key("control", Role::source).key, a.source->traffic_key("control", Role::destination).key);
  EXPECT_NE(a.source->traffic_key("control", Role::source).key, a.source->traffic_key("rc", Role::source).key);
}

TEST(TlsPskHandshake, AnotherKeyIsRefusedOnBothSidesWithAGenericError) {
  const Handshakes h = handshake_pair(random_key(), random_key());
  EXPECT_FALSE(h.source);
  EXPECT_FALSE(h.destination);
  EXPECT_NE(h.source_error.find("does not hold this cluster key"), std::string::npos) << h.source_error;
  EXPECT_TRUE(h.destination_kind == ErrorKind::refused || h.destination_kind == ErrorKind::peer_vanished) << h.destination_error;
  EXPECT_FALSE(h.destination_detail.empty());  // the reason stays in the local log
}

TEST(TlsPskHandshake, ASilentOrGarblingPeerEndsAtTheDeadline) {
  const ClusterKey key = random_key();
  TcpListener listener = TcpListener::listen("127.0.0.1:0");
  // Silent: connects and says nothing.
  auto silent = connect_tcp(listener.local_address(), 5s);
  auto c = listener.accept(5s);
  ASSERT_TRUE(c);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(kind_of([&] { tls_psk_handshake(c->socket_fd(), Role::destination, key, t0 + 300ms); }), ErrorKind::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  // Garbling: an old hymig's frame header instead of a ClientHello.
  auto garbler = connect_tcp(listener.local_address(), 5s);
  auto g = listener.accept(5s);
  ASSERT_TRUE(g);
  const char old_hello[] = "HYMC\x01\x01\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00";
  ASSERT_EQ(::send(garbler->socket_fd(), old_hello, 16, MSG_NOSIGNAL), 16);
  const ErrorKind k = kind_of([&] {
    tls_psk_handshake(g->socket_fd(), Role::destination, key, std::chrono::steady_clock::now() + 2s);
  });
  EXPECT_TRUE(k == ErrorKind::refused || k == ErrorKind::peer_vanished);
}

// ---- records -----------------------------------------------------------------------------------

TEST(Aead, SealOpenAndEveryTamperingFails) {
  const TrafficKey key = SessionSecrets::random_for_testing().traffic_key("test", Role::source);
  AeadCipher seal(key, AeadCipher::Direction::seal), open(key, AeadCipher::Direction::open);
  const auto aad = bytes_of("header");
  const auto clear = bytes_of("the page contents");
  std::vector<std::byte> ct(clear.size()), back(clear.size());
  const AeadTag tag = aead_seal(seal, 7, aad, clear, ct.data());
  EXPECT_NE(ct, clear);
  ASSERT_TRUE(aead_open(open, 7, aad, ct, back.data(), tag));
  EXPECT_EQ(back, clear);
  EXPECT_FALSE(aead_open(open, 8, aad, ct, back.data(), tag)) << "another record number";
  auto bad_aad = aad;
  bad_aad[0] ^= std::byte{1};
  EXPECT_FALSE(aead_open(open, 7, bad_aad, ct, back.data(), tag));
  auto bad_ct = ct;
  bad_ct[3] ^= std::byte{1};
  EXPECT_FALSE(aead_open(open, 7, aad, bad_ct, back.data(), tag));
  auto bad_tag = tag;
  bad_tag[15] ^= std::byte{1};
  EXPECT_FALSE(aead_open(open, 7, aad, ct, back.data(), bad_tag));
  AeadCipher other(SessionSecrets::random_for_testing().traffic_key("test", Role::source), AeadCipher::Direction::open);
  EXPECT_FALSE(aead_open(other, 7, aad, ct, back.data(), tag)) << "another key";
  // In place, and in pieces: the same record.
  std::vector<std::byte> inplace = clear;
  seal.begin(9, aad);
  seal.crypt(std::span(inplace).first(5), inplace.data());
  seal.crypt(std::span(inplace).subspan(5), inplace.data() + 5);
  const AeadTag t2 = seal.finish_seal();
  ASSERT_TRUE(aead_open(open, 9, aad, inplace, inplace.data(), t2));
  EXPECT_EQ(inplace, clear);
}

TEST(ReplayWindow, EachNumberOnceAndNothingOlderThanTheWindow) {
  ReplayWindow w;
  EXPECT_EQ(w.check(5), ReplayWindow::Verdict::fresh);
  w.mark(5);
  EXPECT_EQ(w.check(5), ReplayWindow::Verdict::replayed);
  EXPECT_EQ(w.check(3), ReplayWindow::Verdict::fresh);  // reordered: still fine
  w.mark(3);
  EXPECT_EQ(w.check(3), ReplayWindow::Verdict::replayed);
  w.mark(100000);
  EXPECT_EQ(w.check(5), ReplayWindow::Verdict::too_old);
  EXPECT_EQ(w.check(99999), ReplayWindow::Verdict::fresh);
  EXPECT_EQ(w.check(100000 - ReplayWindow::kWindow + 64), ReplayWindow::Verdict::fresh);
  EXPECT_EQ(w.check(100000 - ReplayWindow::kWindow - 64), ReplayWindow::Verdict::too_old);
  // A slide of less than a window forgets only what left it.
  w.mark(99990);
  w.mark(100000 + 640);
  EXPECT_EQ(w.check(99990), ReplayWindow::Verdict::replayed);
  EXPECT_EQ(w.check(100000 + 639), ReplayWindow::Verdict::fresh);
  // Every number of a long in-order stream is taken once.
  ReplayWindow s;
  for (std::uint64_t i = 0; i < 300000; ++i) {
    ASSERT_EQ(s.check(i), ReplayWindow::Verdict::fresh) << i;
    s.mark(i);
    ASSERT_EQ(s.check(i), ReplayWindow::Verdict::replayed) << i;
  }
}

TEST(EpochKeys, KeysChangeWithTheEpochAndBothEndsAgree) {
  const SessionSecrets s = SessionSecrets::random_for_testing();
  EpochKeys seal(s, "datagram/0", Role::source, AeadCipher::Direction::seal);
  EpochKeys open(s, "datagram/0", Role::source, AeadCipher::Direction::open);
  const auto aad = bytes_of("h");
  const auto clear = bytes_of("payload");
  std::vector<std::byte> ct(clear.size()), back(clear.size());
  for (std::uint64_t seq : {std::uint64_t{0}, (std::uint64_t{1} << 24) - 1, std::uint64_t{1} << 24, std::uint64_t{5} << 24}) {
    const AeadTag tag = aead_seal(seal.for_seq(seq), seq, aad, clear, ct.data());
    ASSERT_TRUE(aead_open(open.for_seq(seq), seq, aad, ct, back.data(), tag)) << seq;
    // The same number under the previous epoch's key does not open.
    if (seq >= (std::uint64_t{1} << 24)) {
      EXPECT_FALSE(aead_open(open.for_seq(seq - (std::uint64_t{1} << 24)), seq, aad, ct, back.data(), tag));
    }
  }
}

// ---- the sealed channel ------------------------------------------------------------------------

// The frames a sealed sender put on a fake link, for a test to replay, drop, reorder or alter.
struct Frame {
  std::uint8_t type;
  std::vector<std::byte> body, payload;
};

class SealedChannelTest : public ::testing::Test {
 protected:
  SessionSecrets secrets = SessionSecrets::random_for_testing();

  // Seals what `send` sends as the source and returns the raw frames.
  std::vector<Frame> frames_of(const std::function<void(ReliableChannel&)>& send) {
    auto pair = make_fake_reliable_pair();
    ReliableChannel& raw_b = *pair.b;
    auto sealed = seal_channel(std::move(pair.a), secrets, "control", Role::source);
    send(*sealed);
    std::vector<Frame> out;
    raw_b.set_limits(1 << 24, 1 << 24);
    while (auto m = raw_b.receive(0ms)) {
      Frame f{m->type, {m->body.begin(), m->body.end()}, std::vector<std::byte>(m->payload_bytes)};
      if (m->payload_bytes) {
        const MutableBuffer dst{f.payload.data(), f.payload.size()};
        raw_b.receive_payload({&dst, 1});
      }
      out.push_back(std::move(f));
    }
    return out;
  }

  // Feeds `frames` to a sealed destination and returns what it hands out, up to the first error.
  struct Received {
    std::vector<std::string> bodies;
    std::vector<std::string> payloads;
    std::string error;
  };
  Received deliver(const std::vector<Frame>& frames, const SessionSecrets* with = nullptr) {
    auto pair = make_fake_reliable_pair();
    for (const auto& f : frames) {
      if (f.payload.empty()) {
        pair.a->send(f.type, f.body);
      } else {
        const ConstBuffer part{f.payload.data(), f.payload.size()};
        pair.a->send_with_payload(f.type, f.body, {&part, 1});
      }
    }
    auto sealed = seal_channel(std::move(pair.b), with ? *with : secrets, "control", Role::destination);
    sealed->set_limits(1 << 20, 1 << 20);
    Received r;
    try {
      while (auto m = sealed->receive(0ms)) {
        r.bodies.emplace_back(reinterpret_cast<const char*>(m->body.data()), m->body.size());
        std::string p(m->payload_bytes, '\0');
        if (m->payload_bytes) {
          const MutableBuffer dst{reinterpret_cast<std::byte*>(p.data()), p.size()};
          sealed->receive_payload({&dst, 1});
        }
        r.payloads.push_back(p);
      }
    } catch (const Error& e) {
      r.error = e.what();
    }
    return r;
  }

  std::vector<Frame> three_messages() {
    return frames_of([](ReliableChannel& ch) {
      ch.send(wire(MsgType::round_end), bytes_of("one"));
      const auto pay = bytes_of("pages pages pages");
      const ConstBuffer part{pay.data(), pay.size()};
      ch.send_with_payload(wire(MsgType::pages), bytes_of("two"), {&part, 1});
      ch.send(wire(MsgType::commit), bytes_of("three"));
    });
  }
};

TEST_F(SealedChannelTest, MessagesArriveAsSentAndTravelEncrypted) {
  const auto frames = three_messages();
  ASSERT_EQ(frames.size(), 3u);
  for (const auto& f : frames) {
    EXPECT_EQ(f.type, kSealedFrame) << "the message type travels inside";
    const std::string raw(reinterpret_cast<const char*>(f.body.data()), f.body.size());
    EXPECT_EQ(raw.find("one"), std::string::npos);
    EXPECT_EQ(raw.find("two"), std::string::npos);
  }
  const std::string raw_payload(reinterpret_cast<const char*>(frames[1].payload.data()), frames[1].payload.size());
  EXPECT_EQ(raw_payload.find("pages"), std::string::npos);
  const Received r = deliver(frames);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.bodies, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(r.payloads[1], "pages pages pages");
}

TEST_F(SealedChannelTest, AFlippedBitAnywhereBreaksTheChannel) {
  const auto frames = three_messages();
  for (std::size_t which = 0; which < frames.size(); ++which) {
    for (bool in_payload : {false, true}) {
      if (in_payload && frames[which].payload.empty()) continue;
      auto bad = frames;
      auto& bytes = in_payload ? bad[which].payload : bad[which].body;
      for (std::size_t i = 0; i < bytes.size(); i += 5) {
        auto b2 = bad;
        (in_payload ? b2[which].payload : b2[which].body)[i] ^= std::byte{0x10};
        const Received r = deliver(b2);
        EXPECT_NE(r.error.find("failed authentication"), std::string::npos) << which << "/" << i << ": " << r.error;
        EXPECT_EQ(r.bodies.size(), in_payload ? which + 1 : which) << "nothing after the tampered message";
      }
    }
  }
}

TEST_F(SealedChannelTest, ReplayedDroppedReorderedOrForeignFramesFail) {
  const auto f = three_messages();
  EXPECT_FALSE(deliver({f[0], f[0]}).error.empty()) << "replayed";
  EXPECT_FALSE(deliver({f[0], f[2]}).error.empty()) << "one dropped";
  EXPECT_FALSE(deliver({f[1], f[0]}).error.empty()) << "reordered";
  const SessionSecrets other = SessionSecrets::random_for_testing();
  EXPECT_FALSE(deliver(f, &other).error.empty()) << "another session's";
  // A frame of the destination's own direction reflected back to it.
  auto pair = make_fake_reliable_pair();
  auto dest = seal_channel(std::move(pair.b), secrets, "control", Role::destination);
  dest->send(wire(MsgType::ready), bytes_of("mine"));
  auto m = pair.a->receive(0ms);
  ASSERT_TRUE(m);
  const Frame reflected{m->type, {m->body.begin(), m->body.end()}, {}};
  EXPECT_FALSE(deliver({reflected}).error.empty()) << "reflected";
  // An unsealed frame (an old hymig, or a raw injection).
  EXPECT_FALSE(deliver({Frame{wire(MsgType::commit), {}, {}}}).error.empty());
}

TEST_F(SealedChannelTest, AfterAFailureEveryReceiveFailsButTheAbortStillGoes) {
  auto frames = three_messages();
  frames[0].body[0] ^= std::byte{1};
  auto pair = make_fake_reliable_pair();
  pair.a->send(frames[0].type, frames[0].body);
  pair.a->send(frames[2].type, frames[2].body);
  ReliableChannel& raw_source = *pair.a;
  auto sealed = seal_channel(std::move(pair.b), secrets, "control", Role::destination);
  EXPECT_THROW(sealed->receive(0ms), Error);
  EXPECT_THROW(sealed->receive(0ms), Error) << "a later, authentic message must not be taken either";
  send_abort_quietly(*sealed, "tampered with");
  auto m = raw_source.receive(0ms);
  ASSERT_TRUE(m) << "the abort did not go out";
  EXPECT_EQ(m->type, kSealedFrame);
}

// ---- decoders' limits --------------------------------------------------------------------------

TEST(WireLimits, DeepJsonIsRefusedWhileParsing) {
  // 60,000 levels (the review's crash): refused, quickly, without recursion.
  std::string deep = R"({"version":2,"role":"source","software":"x","caps":)";
  deep += std::string(60000, '[') + std::string(60000, ']') + "}";
  nlohmann::json caps;
  const auto t0 = std::chrono::steady_clock::now();
  std::string what;
  EXPECT_EQ(kind_of([&] { decode_hello(bytes_of(deep), caps); }, &what), ErrorKind::protocol);
  EXPECT_NE(what.find("nested deeper"), std::string::npos) << what;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  std::string obj = R"({"session":1,"x":)" + std::string(5000, '{');
  EXPECT_THROW(decode_notify(bytes_of(obj)), Error);
  // A sane hello still passes.
  Hello h;
  h.role = "source";
  h.software = "hymig test";
  EXPECT_EQ(decode_hello(encode_hello(h, {{"udp", {{"mtu", 1500}}}}), caps).role, "source");
}

TEST(WireLimits, VarintsPastSixtyFourBitsAreRefused) {
  std::vector<std::byte> ok(9, std::byte{0xff});
  ok.push_back(std::byte{0x01});  // bit 63
  ByteReader r(ok, "test");
  EXPECT_EQ(r.get_varint(), ~std::uint64_t{0});
  std::vector<std::byte> over(9, std::byte{0xff});
  over.push_back(std::byte{0x02});  // bit 64: would be cut off
  ByteReader r2(over, "test");
  EXPECT_THROW(r2.get_varint(), Error);
}

TEST(WireLimits, PeerTextMustBePrintable) {
  EXPECT_TRUE(is_printable_text("plain text, caf\xc3\xa9, \xe2\x82\xac 5"));
  EXPECT_FALSE(is_printable_text("line\nbreak"));
  EXPECT_FALSE(is_printable_text("esc \x1b[31m"));
  EXPECT_FALSE(is_printable_text("c1 \xc2\x9b"));
  EXPECT_FALSE(is_printable_text("bidi \xe2\x80\xae txt"));  // U+202E
  EXPECT_FALSE(is_printable_text("isolate \xe2\x81\xa6"));   // U+2066
  EXPECT_FALSE(is_printable_text("bad \xff utf8"));
  EXPECT_FALSE(is_printable_text("overlong \xc0\xaf"));
  EXPECT_FALSE(is_printable_text("surrogate \xed\xa0\x80"));
  EXPECT_FALSE(is_printable_text("cut \xe2\x82"));
  EXPECT_EQ(printable("a\nb\xe2\x80\xae"), "a?b???");
  EXPECT_EQ(printable(std::string(600, 'x')).size(), 515u);
  // Aborts carry text from the peer: the decoder refuses what is not printable.
  EXPECT_THROW(decode_abort(bytes_of(R"({"reason":"a\u202eb"})")), Error);
}

TEST(WireLimits, ImageNamesFitTheStore) {
  EXPECT_TRUE(is_safe_image_name("guest-1.ram"));
  EXPECT_TRUE(is_safe_image_name(std::string(kMaxImageNameBytes, 'a')));
  EXPECT_FALSE(is_safe_image_name(std::string(kMaxImageNameBytes + 1, 'a')));
  for (const char* bad : {"", ".hidden", "a/b", "..", "a b", "caf\xc3\xa9", "x\n"}) EXPECT_FALSE(is_safe_image_name(bad)) << bad;
  // The longest name still fits NAME_MAX with the temporary name's prefix and suffix.
  EXPECT_LE(1 + kMaxImageNameBytes + 1 + 16 + 5, 255u);
}

TEST(WireLimits, BindAndWrittenMessagesRoundTripAndRejectJunk) {
  Bind b;
  b.session = 42;
  b.challenge[7] = 9;
  const Bind back = decode_bind(encode_bind(b));
  EXPECT_EQ(back.session, 42u);
  EXPECT_EQ(back.challenge, b.challenge);
  const auto bind_body = encode_bind(b);
  EXPECT_THROW(decode_bind(std::span(bind_body).first(39)), Error);
  const std::uint64_t pages[] = {1, 5};
  const AeadTag tags[2] = {};
  std::vector<std::uint64_t> p;
  std::vector<AeadTag> t;
  EXPECT_EQ(decode_written(encode_written(kFinalRound, pages, tags), 10, p, t), kFinalRound);
  EXPECT_EQ(p, (std::vector<std::uint64_t>{1, 5}));
  EXPECT_EQ(t.size(), 2u);
  auto body = encode_written(kFinalRound, pages, tags);
  body.pop_back();
  EXPECT_THROW(decode_written(body, 10, p, t), Error);
  EXPECT_THROW(decode_written(encode_written(kFinalRound, pages, tags), 5, p, t), Error);  // page 5 of 5
}

// ---- the keyed digest ------------------------------------------------------------------------

TEST(WireLimits, QueriesAreNamedBoundedAndAnswersAreObjects) {
  nlohmann::json args;
  EXPECT_EQ(decode_query(encode_query("status", nlohmann::json::object()), args, {"status"}), "status");
  EXPECT_TRUE(args.is_object());
  EXPECT_THROW(decode_query(encode_query("reboot", nlohmann::json::object()), args, {"status"}), Error);
  EXPECT_THROW(decode_query(bytes_of(R"({"query":"status","args":[]})"), args, {"status"}), Error);
  EXPECT_THROW(decode_query(bytes_of(R"({"query":"status"})"), args, {"status"}), Error);
  EXPECT_THROW(decode_query(encode_query("status", {{"pad", std::string(kMaxQueryBytes, 'x')}}), args, {"status"}), Error);
  EXPECT_EQ(decode_answer(encode_answer({{"a", 1}}))["a"], 1);
  EXPECT_THROW(decode_answer(bytes_of("[1,2]")), Error);
  EXPECT_THROW(decode_answer(bytes_of("{\"a\":")), Error);
  EXPECT_THROW(decode_answer(bytes_of(std::string(40, '[') + std::string(40, ']'))), Error);
}

TEST(KeyedDigest, CoversEveryByteAndDependsOnTheSession) {
  std::vector<std::byte> image(64 * 4096);
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = std::byte(i * 7 + i / 4096);
  const SessionSecrets s = SessionSecrets::random_for_testing();
  Bitmap none(64);
  const Digest d = keyed_digest_of_image(s, image, 4096, none, 2);
  EXPECT_EQ(d, keyed_digest_of_image(s, image, 4096, none, 1)) << "threads must not change it";
  EXPECT_NE(d, keyed_digest_of_image(SessionSecrets::random_for_testing(), image, 4096, none));
  for (std::size_t at : {std::size_t{0}, std::size_t{4095}, std::size_t{33 * 4096 + 17}, image.size() - 1}) {
    auto changed = image;
    changed[at] ^= std::byte{1};
    EXPECT_NE(d, keyed_digest_of_image(s, changed, 4096, none)) << at;
  }
  // Two pages swapped: every page's tag is the same, only the order differs.
  auto swapped = image;
  std::swap_ranges(swapped.begin(), swapped.begin() + 4096, swapped.begin() + 4096);
  EXPECT_NE(d, keyed_digest_of_image(s, swapped, 4096, none));
  // A hole is taken as zeros without being read: the same digest as a page of zeros.
  auto zeroed = image;
  std::fill(zeroed.begin() + 5 * 4096, zeroed.begin() + 6 * 4096, std::byte{0});
  Bitmap hole(64);
  hole.set(5);
  EXPECT_EQ(keyed_digest_of_image(s, zeroed, 4096, none), keyed_digest_of_image(s, image, 4096, hole));
}

}  // namespace
}  // namespace hymig
