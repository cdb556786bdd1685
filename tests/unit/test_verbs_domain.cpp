// verbs/verbs_domain.hpp: the queue pairs of one session share a device context and PD (and a
// region is registered once); two sessions never share a PD. On a Soft-RoCE lab guest.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <vector>

#include "tests/unit/test_verbs_lab.hpp"
#include "verbs/rc_connect.hpp"
#include "verbs/rc_listener.hpp"
#include "verbs/rc_reliable_channel.hpp"
#include "verbs/ud_datagram_channel.hpp"
#include "verbs/verbs_domain.hpp"

namespace hymig::verbs {
namespace {

using namespace std::chrono_literals;
using test::lab_ip_a;
using test::lab_ip_b;

std::unique_ptr<UdDatagramChannel> ud_lane(const std::string& ip, std::shared_ptr<DeviceScope> devices) {
  UdChannelOptions options;
  options.devices = std::move(devices);
  return UdDatagramChannel::open(ip, options);
}

TEST(VerbsDomain, LanesOfOneSessionShareTheDeviceTwoSessionsNever) {
  HYMIG_REQUIRE_ROCE_LAB();
  auto session = std::make_shared<DeviceScope>();
  auto lane0 = ud_lane(lab_ip_a(), session);
  auto lane1 = ud_lane(lab_ip_a(), session);
  EXPECT_EQ(lane0->queue_pair()->pd, lane1->queue_pair()->pd);
  EXPECT_EQ(lane0->queue_pair()->context, lane1->queue_pair()->context);

  auto other = ud_lane(lab_ip_a(), std::make_shared<DeviceScope>());
  EXPECT_NE(other->queue_pair()->pd, lane0->queue_pair()->pd);
  auto alone = ud_lane(lab_ip_a(), nullptr);
  EXPECT_NE(alone->queue_pair()->pd, lane0->queue_pair()->pd);
  // Another device in the same session: a domain of its own.
  auto on_b = ud_lane(lab_ip_b(), session);
  EXPECT_NE(on_b->queue_pair()->pd, lane0->queue_pair()->pd);
}

TEST(VerbsDomain, RcChannelSharesThePdOfItsSessionsLanes) {
  HYMIG_REQUIRE_ROCE_LAB();
  auto source = std::make_shared<DeviceScope>();
  auto destination = std::make_shared<DeviceScope>();
  auto source_lane = ud_lane(lab_ip_a(), source);
  auto destination_lane = ud_lane(lab_ip_b(), destination);

  RcOptions listen_options;
  listen_options.devices = destination;
  auto listener = RcListener::open(lab_ip_b(), 0, listen_options);
  auto accepted = std::async(std::launch::async, [&] { return listener->accept(10s); });
  RcOptions connect_options;
  connect_options.devices = source;
  auto client = connect_rc(lab_ip_a(), listener->endpoint(), 10s, connect_options);
  auto server = accepted.get();
  ASSERT_TRUE(client && server);
  auto& c = static_cast<RcReliableChannel&>(*client);
  auto& s = static_cast<RcReliableChannel&>(*server);
  EXPECT_EQ(c.queue_pair()->pd, source_lane->queue_pair()->pd);
  EXPECT_EQ(s.queue_pair()->pd, destination_lane->queue_pair()->pd);
  EXPECT_NE(c.queue_pair()->pd, s.queue_pair()->pd);

  // The shared PD carries messages as before, and the lanes outlive the RC channel.
  const std::vector<std::byte> body(3000, std::byte{0x5a});
  c.send(7, body);
  auto m = s.receive(5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, 7);
  EXPECT_EQ(std::vector<std::byte>(m->body.begin(), m->body.end()), body);
  client.reset();
  server.reset();
  EXPECT_NE(source_lane->queue_pair()->pd, nullptr);
}

TEST(VerbsDomain, ARegionIsRegisteredOnceAndReleasedWithItsLastHolder) {
  HYMIG_REQUIRE_ROCE_LAB();
  DeviceScope session;
  const std::string device = find_roce_port(lab_ip_a())->device;
  std::shared_ptr<VerbsDomain> domain = session.of_device(device);
  EXPECT_EQ(session.of_device(device), domain);
  std::vector<std::byte> image(64 * 4096);
  auto first = domain->register_region(image, IBV_ACCESS_LOCAL_WRITE, 0);
  auto second = domain->register_region(image, IBV_ACCESS_LOCAL_WRITE, 0);
  ASSERT_TRUE(first);
  EXPECT_EQ(first, second);  // one registration, one pin
  auto remote = domain->register_region(image, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
                                        IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  ASSERT_TRUE(remote);
  EXPECT_NE(remote, first);  // other rights: a registration of its own
  std::weak_ptr<ibv_mr> released = first;
  first.reset();
  second.reset();
  EXPECT_TRUE(released.expired());
  // A registration keeps its domain alive; once nothing holds it, the session opens a new one.
  std::weak_ptr<VerbsDomain> old = domain;
  domain.reset();
  EXPECT_FALSE(old.expired());
  remote.reset();
  EXPECT_TRUE(old.expired());
}

}  // namespace
}  // namespace hymig::verbs
