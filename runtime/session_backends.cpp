#include "runtime/session_backends.hpp"

#include <stdexcept>

#include "core/error.hpp"
#include "udp/udp_datagram_channel.hpp"
#ifdef HYMIG_HAVE_VERBS
#include "verbs/rc_connect.hpp"
#include "verbs/rc_listener.hpp"
#include "verbs/ud_datagram_channel.hpp"
#include "verbs/verbs_domain.hpp"
#endif

namespace hymig::runtime {
namespace {

#ifdef HYMIG_HAVE_VERBS
// The RDMA devices of one session: its UD lanes and its RC channel share them.
using Devices = std::shared_ptr<verbs::DeviceScope>;
Devices session_devices() { return std::make_shared<verbs::DeviceScope>(); }
#else
struct NoDevices {};
using Devices = std::shared_ptr<NoDevices>;
Devices session_devices() { return nullptr; }

// A build without verbs/ (HYMIG_WITH_VERBS=OFF) has no RDMA: its probe reports no RDMA ports, so
// the policy never picks ud or rc; this refuses them should anything still ask.
[[noreturn]] void built_without_verbs(const std::string& what, const std::string& instead) {
  throw Error(ErrorKind::usage, what + ": this hymig was built without rdma-core (HYMIG_WITH_VERBS=OFF); " + instead);
}
#endif

std::unique_ptr<DatagramChannel> open_datagrams(BulkTransport kind, const std::string& host, std::size_t bytes,
                                                [[maybe_unused]] const Devices& devices) {
  switch (kind) {
    case BulkTransport::udp: return UdpDatagramChannel::open(host, bytes);
    case BulkTransport::rdma_ud: {
#ifdef HYMIG_HAVE_VERBS
      verbs::UdChannelOptions options;
      options.max_datagram = bytes;
      options.devices = devices;
      return verbs::UdDatagramChannel::open(host, options);
#else
      built_without_verbs("RDMA UD", "use --bulk udp or tcp");
#endif
    }
    case BulkTransport::tcp: break;
  }
  throw std::logic_error("no datagram channel for the tcp bulk transport");
}

std::unique_ptr<ReliableChannel> connect_rc([[maybe_unused]] const std::string& local_host,
                                            [[maybe_unused]] const std::string& endpoint,
                                            [[maybe_unused]] std::chrono::milliseconds timeout,
                                            [[maybe_unused]] const Devices& devices) {
#ifdef HYMIG_HAVE_VERBS
  verbs::RcOptions options;
  options.devices = devices;
  return verbs::connect_rc(local_host, endpoint, timeout, options);
#else
  built_without_verbs("RDMA RC", "use --reliable tcp");
#endif
}

#ifdef HYMIG_HAVE_VERBS
// The RC listener a session moves to, one per session on the address the source connected to.
class RcAcceptor final : public ReliableAcceptor {
 public:
  explicit RcAcceptor(std::unique_ptr<verbs::RcListener> listener) : listener_(std::move(listener)) {}
  std::string endpoint() const override { return listener_->endpoint(); }
  std::unique_ptr<ReliableChannel> accept(std::chrono::milliseconds timeout) override {
    return listener_->accept(timeout);
  }

 private:
  std::unique_ptr<verbs::RcListener> listener_;
};
#endif

std::unique_ptr<ReliableAcceptor> listen_rc([[maybe_unused]] const std::string& local_host,
                                            [[maybe_unused]] const Devices& devices) {
#ifdef HYMIG_HAVE_VERBS
  verbs::RcOptions options;
  options.devices = devices;
  return std::make_unique<RcAcceptor>(verbs::RcListener::open(local_host, 0, options));
#else
  built_without_verbs("RDMA RC", "the source must use --reliable tcp");
#endif
}

}  // namespace

SourceBackends source_backends(BulkTransport kind, const std::string& local_host, std::size_t datagram_bytes,
                               std::chrono::milliseconds rc_timeout) {
  const Devices devices = session_devices();
  SourceBackends b;
  b.datagrams = [kind, local_host, datagram_bytes, devices] {
    return open_datagrams(kind, local_host, datagram_bytes, devices);
  };
  b.connect_rc = [local_host, rc_timeout, devices](const std::string& endpoint) {
    return connect_rc(local_host, endpoint, rc_timeout, devices);
  };
  return b;
}

DestinationBackends destination_backends(const std::string& local_host) {
  const Devices devices = session_devices();
  DestinationBackends b;
  b.datagrams = [local_host, devices](const Notify& n) { return open_datagrams(n.bulk, local_host, 0, devices); };
  b.rc_acceptors = [local_host, devices](const Notify&) { return listen_rc(local_host, devices); };
  return b;
}

}  // namespace hymig::runtime
