// Bad links on demand, in the calling thread's network namespace: random loss of incoming UDP and
// TCP with nftables (`numgen random`), a rate limit with a tc token bucket on the way out. Used only
// inside namespaces the benchmark's own script created (or a disposable lab guest): everything it
// adds is removed again when the shaper goes away.
#pragma once

#include <cstdint>
#include <string>

namespace hymig::bench {

class LinkShaper {
 public:
  LinkShaper() = default;
  ~LinkShaper();
  LinkShaper(const LinkShaper&) = delete;
  LinkShaper& operator=(const LinkShaper&) = delete;

  // Drops pct % of incoming UDP and TCP (not on lo); 0 removes the rule. Throws Error{io}.
  void set_loss(unsigned pct);
  // tc tbf on `device` at `rate` (tc syntax: 1gbit, 200mbit); "off" removes it. Throws Error{io}.
  void set_rate(const std::string& device, const std::string& rate);
  // Packets the loss rule has dropped since it was set (0 without a rule).
  std::uint64_t dropped() const;

 private:
  unsigned loss_ = 0;
  std::string rate_device_;
};

// Moves the calling thread (and the threads and processes it starts later) into the named network
// namespace (/run/netns/NAME, as `ip netns add` makes). Sockets opened before stay where they were,
// so MPI's own connections keep working. Throws Error{io} naming the namespace.
void enter_network_namespace(const std::string& name);

}  // namespace hymig::bench
