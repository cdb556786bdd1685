// In-memory channels for engine unit tests: a datagram pair with seeded loss, duplication,
// reordering, corruption and delay, and a reliable pair. Never used by the product's commands.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

#include "transport/datagram_channel.hpp"
#include "transport/reliable_channel.hpp"

namespace hymig {

struct Impairments {
  double loss = 0;       // probability a datagram vanishes
  double duplicate = 0;  // probability it is delivered twice
  double reorder = 0;    // probability it overtakes up to 8 queued datagrams
  double corrupt = 0;    // probability one byte of it is flipped
  std::chrono::microseconds delay{0};
  // The receiving thread, after taking a batch, is away this long before it returns it: a
  // receiver descheduled or busy on a loaded host (what it took is late, not lost).
  std::chrono::microseconds receiver_stall{0};
  std::uint64_t seed = 1;
  std::size_t max_datagram = 65507;
  std::size_t queue_limit = 4096;  // datagrams in flight before tail drop (a full link)
};

struct FakeDatagramPair {
  std::unique_ptr<DatagramChannel> a, b;  // a -> b is impaired; b -> a too, with the same settings
};
FakeDatagramPair make_fake_datagram_pair(const Impairments& imp);

struct FakeReliablePair {
  std::unique_ptr<ReliableChannel> a, b;
};
FakeReliablePair make_fake_reliable_pair();

// Makes every later operation on both ends of the pair fail as if the link died (peer_vanished).
void cut_fake_reliable(ReliableChannel& end);

}  // namespace hymig
