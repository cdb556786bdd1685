// Shared by the Verbs* test suites: the two local RoCE addresses of the Soft-RoCE lab
// (HYMIG_LAB_IP_A / HYMIG_LAB_IP_B, defaults 10.9.0.1 / 10.9.0.2) and the skip for hosts without them.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "verbs/device_discovery.hpp"

namespace hymig::verbs::test {

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
inline std::string lab_ip_a() { return env_or("HYMIG_LAB_IP_A", "10.9.0.1"); }
inline std::string lab_ip_b() { return env_or("HYMIG_LAB_IP_B", "10.9.0.2"); }

inline bool lab_ports_present() { return find_roce_port(lab_ip_a()) && find_roce_port(lab_ip_b()); }

}  // namespace hymig::verbs::test

#define HYMIG_REQUIRE_ROCE_LAB()                                                                              \
  do {                                                                                                        \
    if (!::hymig::verbs::test::lab_ports_present())                                                           \
      GTEST_SKIP() << "no active RoCE port with an IPv4 GID (needs rdma_rxe; run in the Soft-RoCE lab)";      \
  } while (0)
