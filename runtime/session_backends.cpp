#include "runtime/session_backends.hpp"

#include <stdexcept>

#include "udp/udp_datagram_channel.hpp"
#include "verbs/rc_connect.hpp"
#include "verbs/rc_listener.hpp"
#include "verbs/ud_datagram_channel.hpp"
#include "verbs/verbs_domain.hpp"

namespace hymig::runtime {
namespace {

using Devices = std::shared_ptr<verbs::DeviceScope>;

std::unique_ptr<DatagramChannel> open_datagrams(BulkTransport kind, const std::string& host, std::size_t bytes,
                                                const Devices& devices) {
  switch (kind) {
    case BulkTransport::udp: return UdpDatagramChannel::open(host, bytes);
    case BulkTransport::rdma_ud: {
      verbs::UdChannelOptions options;
      options.max_datagram = bytes;
      options.devices = devices;
      return verbs::UdDatagramChannel::open(host, options);
    }
    case BulkTransport::tcp: break;
  }
  throw std::logic_error("no datagram channel for the tcp bulk transport");
}

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

}  // namespace

SourceBackends source_backends(BulkTransport kind, const std::string& local_host, std::size_t datagram_bytes,
                               std::chrono::milliseconds rc_timeout) {
  const auto devices = std::make_shared<verbs::DeviceScope>();
  SourceBackends b;
  b.datagrams = [kind, local_host, datagram_bytes, devices] {
    return open_datagrams(kind, local_host, datagram_bytes, devices);
  };
  b.connect_rc = [local_host, rc_timeout, devices](const std::string& endpoint) {
    verbs::RcOptions options;
    options.devices = devices;
    return verbs::connect_rc(local_host, endpoint, rc_timeout, options);
  };
  return b;
}

DestinationBackends destination_backends(const std::string& local_host) {
  const auto devices = std::make_shared<verbs::DeviceScope>();
  DestinationBackends b;
  b.datagrams = [local_host, devices](const Notify& n) { return open_datagrams(n.bulk, local_host, 0, devices); };
  b.rc_acceptors = [local_host, devices](const Notify&) -> std::unique_ptr<ReliableAcceptor> {
    verbs::RcOptions options;
    options.devices = devices;
    return std::make_unique<RcAcceptor>(verbs::RcListener::open(local_host, 0, options));
  };
  return b;
}

}  // namespace hymig::runtime
