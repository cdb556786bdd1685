// Asking a `hymig serve` daemon something (its status, its capacity): an authenticated, encrypted
// session like a migration's, with a query in place of notify.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "security/cluster_key.hpp"

namespace hymig::cli {

// Connects to `address` (HOST:PORT), proves the cluster key, asks `what` with `args` and returns
// the daemon's answer (a JSON object, its shape checked by the caller). Throws Error (refused for
// a daemon that does not hold the key or does not know the query; timeout; peer_vanished).
nlohmann::json query_daemon(const std::string& address, const ClusterKey& key, const std::string& what,
                            const nlohmann::json& args, std::chrono::milliseconds timeout);

}  // namespace hymig::cli
