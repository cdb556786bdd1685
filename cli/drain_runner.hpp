// The drain's run: each domain migrated by a child `hymig migrate --domain`, at most `parallel` at
// once, placed by policy/drain_plan.hpp, watched for progress and completion time, retried on
// another target with back-off, cancellable. One thread, polling the children's pipes.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/drain_plan.hpp"

namespace hymig::cli {

struct DrainSettings {
  std::string hymig;                  // this program's path (the children run it)
  std::string key_file;               // the cluster key, for the children and the queries
  std::string connect;                // the source libvirt URI ("" = default)
  unsigned parallel = 2;
  std::uint64_t bandwidth = 0;        // bytes/s per migration (0: adaptive)
  std::uint64_t total_bandwidth = 0;  // bytes/s over all of them (0: none)
  double completion_timeout_per_gib = 150;
  double progress_timeout = 150;
  unsigned retries = 2;
  double retry_delay = 20;            // seconds before the first retry, doubling
  std::uint64_t headroom = 0;         // memory kept free on a target (0: 5 % of its memory, at most 1 GiB)
  std::string fallback = "none";
  double migrate_timeout = 10;        // each migration's --timeout (a silent peer)
  std::string bind;                   // each migration's --bind
  std::chrono::milliseconds query_timeout{5000};
};

// One attempt of one domain.
struct DrainAttempt {
  std::string target;
  std::string outcome;  // moved, failed, timed-out, cancelled, unknown
  std::string error;
  double started_s = 0;  // since the drain began
  double seconds = 0;
  int exit_code = -1;
  nlohmann::json report;  // the child's report, when it printed one
};

struct DrainJob {
  DrainDomain domain;
  bool movable = true;
  std::string why_not;                 // not movable: why
  std::string outcome = "pending";     // pending, running, moved, failed, not-movable, no-room, cancelled, unknown, planned
  std::string why;                     // the plan's reason, or the final failure's
  std::optional<std::size_t> target;   // current or last
  std::vector<DrainAttempt> attempts;
  std::set<std::size_t> failed_on;
  std::chrono::steady_clock::time_point next_try{};
  // While running:
  std::string phase;
  double fraction = 0;  // of the current round
  double rate = 0;
  std::uint32_t round = 0;
};

// The live view: called about twice a second while the drain runs.
using DrainObserver = std::function<void(const std::vector<DrainJob>&, const std::vector<DrainTarget>&)>;

// Each target's capacity from its daemon (unreachable ones keep the reason).
void query_targets(std::vector<DrainTarget>& targets, const DrainSettings& s);

// What a dry run would do: every job gets outcome "planned" (with the target and why) or
// "no-room" / "not-movable" (with why). Slots are not simulated: only room.
void plan_only(std::vector<DrainJob>& jobs, std::vector<DrainTarget> targets, const DrainSettings& s);

// Runs the drain until every job ended or, after `cancel` was set, every running migration ended
// (nothing new starts; a running one is told to cancel: it stops before its pause, or finishes).
void run_drain(std::vector<DrainJob>& jobs, std::vector<DrainTarget>& targets, const DrainSettings& s,
               const std::atomic<bool>& cancel, const DrainObserver& observe);

}  // namespace hymig::cli
