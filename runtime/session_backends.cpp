#include "runtime/session_backends.hpp"

#include <stdexcept>

#include "udp/udp_datagram_channel.hpp"
#include "verbs/rc_connect.hpp"
#include "verbs/rc_listener.hpp"
#include "verbs/ud_datagram_channel.hpp"

namespace hymig::runtime {
namespace {

std::unique_ptr<DatagramChannel> open_datagrams(BulkTransport kind, const std::string& host, std::size_t bytes) {
  switch (kind) {
    case BulkTransport::udp: return UdpDatagramChannel::open(host, bytes);
    case BulkTransport::rdma_ud: return verbs::UdDatagramChannel::open(host, bytes);
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

DatagramFactory source_datagrams(BulkTransport kind, const std::string& local_host, std::size_t datagram_bytes) {
  return [kind, local_host, datagram_bytes] { return open_datagrams(kind, local_host, datagram_bytes); };
}

ReliableConnector rc_connector(const std::string& local_host, std::chrono::milliseconds timeout) {
  return
      [local_host, timeout](const std::string& endpoint) { return verbs::connect_rc(local_host, endpoint, timeout); };
}

ReceiverDatagramFactory destination_datagrams(const std::string& local_host) {
  return [local_host](const Notify& n) { return open_datagrams(n.bulk, local_host, 0); };
}

ReliableAcceptorFactory rc_acceptors(const std::string& local_host) {
  return [local_host](const Notify&) -> std::unique_ptr<ReliableAcceptor> {
    return std::make_unique<RcAcceptor>(verbs::RcListener::open(local_host));
  };
}

}  // namespace hymig::runtime
