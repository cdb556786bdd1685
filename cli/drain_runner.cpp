#include "cli/drain_runner.hpp"

#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "cli/child_process.hpp"
#include "cli/daemon_client.hpp"
#include "cli/peer_json.hpp"
#include "core/error.hpp"
#include "core/units.hpp"
#include "protocol/wire.hpp"

namespace hymig::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::uint64_t headroom_for(const HostCapacity& c, const DrainSettings& s) {
  return s.headroom ? s.headroom : std::min<std::uint64_t>(1ull << 30, c.memory_total / 20);
}

void query_target(DrainTarget& t, const DrainSettings& s, const ClusterKey& key) {
  try {
    const nlohmann::json st = query_daemon(t.address, key, "status", nlohmann::json::object(), s.query_timeout);
    const auto c = st.find("capacity");
    if (c == st.end()) throw Error(ErrorKind::protocol, "its status has no capacity");
    t.capacity = capacity_from_json(*c);
    t.headroom = headroom_for(*t.capacity, s);
    t.unreachable.clear();
  } catch (const std::exception& e) {
    t.capacity.reset();
    t.unreachable = printable(e.what(), 300);
  }
}

// A running migration: its child and what its progress lines said.
struct Running {
  std::size_t job;
  ChildProcess child;
  Clock::time_point started, last_progress, deadline;
  std::uint64_t best_bytes = 0;
  std::string phase;
  std::string stopping;  // why the drain told it to stop ("" while it runs on)
  std::vector<std::string> errors;
};

class Drain {
 public:
  Drain(std::vector<DrainJob>& jobs, std::vector<DrainTarget>& targets, const DrainSettings& s, const std::atomic<bool>& cancel,
        const DrainObserver& observe)
      : jobs_(jobs), targets_(targets), s_(s), cancel_(cancel), observe_(observe),
        key_(load_cluster_key(s.key_file)) {}

  void run() {
    auto last_view = Clock::time_point{};
    auto last_requery = Clock::now();
    while (true) {
      const auto now = Clock::now();
      if (cancel_.load()) cancel_everything();
      else start_what_can_start(now, last_requery);
      watch_running(now);
      if (running_.empty() && (cancel_.load() || all_ended())) break;
      if (observe_ && now - last_view >= std::chrono::milliseconds(500)) {
        observe_(jobs_, targets_);
        last_view = now;
      }
      wait_for_output(std::chrono::milliseconds(100));
    }
    for (auto& j : jobs_)
      if (j.outcome == "pending") {
        j.outcome = "cancelled";
        if (j.why.empty()) j.why = "the drain was cancelled before it started";
      }
    if (observe_) observe_(jobs_, targets_);
  }

 private:
  bool all_ended() const {
    return std::none_of(jobs_.begin(), jobs_.end(), [](const DrainJob& j) { return j.outcome == "pending" || j.outcome == "running"; });
  }

  std::uint64_t migration_rate() const {
    std::uint64_t r = s_.bandwidth;
    if (s_.total_bandwidth) {
      const std::uint64_t share = s_.total_bandwidth / std::max(1u, s_.parallel);
      r = r ? std::min(r, share) : share;
    }
    return r;
  }

  void start_what_can_start(Clock::time_point now, Clock::time_point& last_requery) {
    bool waiting_for_slots = false;
    for (std::size_t i = 0; i < jobs_.size() && running_.size() < s_.parallel; ++i) {
      DrainJob& j = jobs_[i];
      if (j.outcome != "pending" || now < j.next_try) continue;
      TargetChoice c = choose_target(j.domain, targets_, j.failed_on);
      // A retry prefers a target it has not failed on; with none left, one it failed on before
      // (a daemon restarted, a copy cleaned up) beats giving up.
      if (!c.target && !c.ever && !j.failed_on.empty()) c = choose_target(j.domain, targets_, {});
      if (c.target) {
        start(i, *c.target, c.why);
      } else if (c.ever) {
        waiting_for_slots = true;
        j.why = c.why;
      } else {
        j.outcome = j.attempts.empty() ? "no-room" : "failed";
        j.why = j.attempts.empty() ? c.why : j.attempts.back().error + "; no other target: " + c.why;
      }
    }
    // Slots held by other sources free up without this drain seeing it: ask again now and then.
    if (waiting_for_slots && now - last_requery >= std::chrono::seconds(5)) {
      requery_all();
      last_requery = now;
    }
  }

  // Fresh capacities; this drain's own running migrations are taken out of the daemons' counts
  // (they are in `running` and `placed_*` already).
  void requery_all() {
    for (std::size_t t = 0; t < targets_.size(); ++t) {
      DrainTarget& tg = targets_[t];
      query_target(tg, s_, key_);
      if (!tg.capacity) continue;
      std::uint64_t ours = 0;
      unsigned n = 0;
      for (const auto& r : running_)
        if (jobs_[r.job].target == t) {
          ours += jobs_[r.job].domain.ram_bytes;
          ++n;
        }
      tg.capacity->incoming -= std::min(tg.capacity->incoming, n);
      tg.capacity->incoming_bytes -= std::min(tg.capacity->incoming_bytes, ours);
      tg.placed_bytes = tg.placed_huge_bytes = 0;
      for (const auto& r : running_)
        if (jobs_[r.job].target == t)
          (jobs_[r.job].domain.hugepage_bytes ? tg.placed_huge_bytes : tg.placed_bytes) += jobs_[r.job].domain.ram_bytes;
    }
  }

  void start(std::size_t i, std::size_t t, const std::string& why) {
    DrainJob& j = jobs_[i];
    std::vector<std::string> argv = {s_.hymig, "migrate", "--domain", j.domain.name, "--to", targets_[t].address,
                                     "--report", "json", "--progress", "json", "--key-file", s_.key_file,
                                     "--timeout", fmt::format("{}", s_.migrate_timeout)};
    if (!s_.connect.empty()) argv.insert(argv.end(), {"--connect", s_.connect});
    if (const std::uint64_t r = migration_rate()) argv.insert(argv.end(), {"--rate", std::to_string(r)});
    if (s_.fallback != "none") argv.insert(argv.end(), {"--fallback", s_.fallback});
    if (!s_.bind.empty()) argv.insert(argv.end(), {"--bind", s_.bind});
    const auto now = Clock::now();
    const double gib = std::max(1.0, double(j.domain.ram_bytes) / double(1ull << 30));
    try {
      Running r{i, ChildProcess::spawn(argv), now, now,
                now + std::chrono::milliseconds(static_cast<long long>(s_.completion_timeout_per_gib * gib * 1000)), 0, "", "", {}};
      running_.push_back(std::move(r));
    } catch (const std::exception& e) {
      j.outcome = "failed";
      j.why = std::string("cannot start hymig migrate: ") + e.what();
      return;
    }
    place_on(targets_[t], j.domain);
    j.outcome = "running";
    j.target = t;
    j.why = why;
    j.phase = "starting";
    j.fraction = 0;
    j.rate = 0;
  }

  void cancel_everything() {
    for (auto& r : running_)
      if (r.stopping.empty()) {
        r.stopping = "cancelled";
        r.child.signal(SIGTERM);
      }
  }

  void take_lines(Running& r, std::vector<std::string>& lines) {
    DrainJob& j = jobs_[r.job];
    for (auto& l : lines) {
      if (l.rfind("{\"progress\":", 0) == 0) {
        const auto p = nlohmann::json::parse(l, nullptr, false);
        if (p.is_discarded() || !p.contains("progress") || !p["progress"].is_object()) continue;
        const auto& g = p["progress"];
        const auto num = [&](const char* k) { return json_number(g, k); };
        const std::uint64_t moved = static_cast<std::uint64_t>(num("bytes_moved"));
        const std::string phase = g.contains("phase") && g["phase"].is_string() ? g["phase"].get<std::string>() : "";
        if (moved > r.best_bytes || phase != r.phase) r.last_progress = Clock::now();
        r.best_bytes = std::max(r.best_bytes, moved);
        r.phase = phase;
        j.phase = phase.empty() ? "rounds" : phase;
        j.round = static_cast<std::uint32_t>(num("round"));
        j.rate = num("rate");
        const double rb = num("round_bytes");
        j.fraction = rb > 0 ? std::min(1.0, num("round_bytes_done") / rb) : 0;
      } else if (!l.empty()) {
        r.errors.push_back(printable(l, 600));
        if (r.errors.size() > 20) r.errors.erase(r.errors.begin());
      }
    }
    lines.clear();
  }

  void watch_running(Clock::time_point now) {
    std::vector<std::string> lines;
    for (auto it = running_.begin(); it != running_.end();) {
      Running& r = *it;
      const bool open = r.child.read_available(lines);
      take_lines(r, lines);
      if (r.stopping.empty()) {
        if (now > r.deadline) {
          r.stopping = fmt::format("completion timeout: not done within {:.0f} s ({} s per GiB)",
                                   seconds_between(r.started, r.deadline), s_.completion_timeout_per_gib);
          r.child.signal(SIGTERM);
        } else if (seconds_between(r.last_progress, now) > s_.progress_timeout) {
          r.stopping = fmt::format("progress timeout: nothing moved for {:.0f} s", s_.progress_timeout);
          r.child.signal(SIGTERM);
        }
      }
      const auto code = r.child.poll_exit();
      if (!code) {
        ++it;
        continue;
      }
      if (open) {  // the last words may still be in the pipes
        r.child.read_available(lines);
        take_lines(r, lines);
      }
      finish(r, *code, now);
      it = running_.erase(it);
    }
  }

  void finish(Running& r, int code, Clock::time_point now) {
    DrainJob& j = jobs_[r.job];
    DrainTarget& t = targets_[*j.target];
    DrainAttempt a;
    a.target = t.address;
    a.exit_code = code;
    a.started_s = seconds_between(began_, r.started);
    a.seconds = seconds_between(r.started, now);
    a.report = nlohmann::json::parse(r.child.stdout_text(), nullptr, false);
    if (a.report.is_discarded() || !a.report.is_object()) a.report = nullptr;
    if (a.report.is_object() && a.report.contains("error") && a.report["error"].is_string())
      a.error = printable(a.report["error"].get<std::string>(), 600);
    if (a.error.empty() && !r.errors.empty()) a.error = r.errors.back();
    j.phase.clear();
    if (code == 0) {
      a.outcome = "moved";
      j.outcome = "moved";
      j.why.clear();
      moved_to(t);
      j.attempts.push_back(std::move(a));
      return;
    }
    unplace_from(t, j.domain);
    if (code == 3) {
      // Commit sent, not confirmed: the guest stays paused here and may run there. Never retried.
      a.outcome = "unknown";
      j.outcome = "unknown";
      j.why = a.error.empty() ? "commit outcome unknown" : a.error;
      j.attempts.push_back(std::move(a));
      return;
    }
    if (r.stopping == "cancelled") {
      a.outcome = "cancelled";
      j.outcome = "cancelled";
      j.why = "the drain was cancelled while it migrated; it runs on here";
      j.attempts.push_back(std::move(a));
      return;
    }
    a.outcome = r.stopping.empty() ? "failed" : "timed-out";
    if (!r.stopping.empty()) a.error = r.stopping + (a.error.empty() ? "" : " (" + a.error + ")");
    if (a.error.empty()) a.error = fmt::format("hymig migrate exited with {}", code);
    j.failed_on.insert(*j.target);
    const std::string err = a.error;
    j.attempts.push_back(std::move(a));
    // The target may be what failed: ask it again before anything else goes there.
    query_target(t, s_, key_);
    if (j.attempts.size() > s_.retries) {
      j.outcome = "failed";
      j.why = fmt::format("{} (after {} attempt{})", err, j.attempts.size(), j.attempts.size() == 1 ? "" : "s");
      return;
    }
    j.outcome = "pending";
    const double delay = s_.retry_delay * std::pow(2.0, double(j.attempts.size() - 1));
    j.next_try = now + std::chrono::milliseconds(static_cast<long long>(delay * 1000));
    j.why = fmt::format("retry in {:.0f} s on another target after: {}", delay, err);
  }

  void wait_for_output(std::chrono::milliseconds timeout) {
    std::vector<pollfd> fds;
    for (const auto& r : running_) {
      if (r.child.stdout_fd() >= 0) fds.push_back({r.child.stdout_fd(), POLLIN, 0});
      if (r.child.stderr_fd() >= 0) fds.push_back({r.child.stderr_fd(), POLLIN, 0});
    }
    if (fds.empty()) std::this_thread::sleep_for(timeout);
    else ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()));
  }

  std::vector<DrainJob>& jobs_;
  std::vector<DrainTarget>& targets_;
  const DrainSettings& s_;
  const std::atomic<bool>& cancel_;
  const DrainObserver& observe_;
  const ClusterKey key_;
  const Clock::time_point began_ = Clock::now();
  std::vector<Running> running_;
};

}  // namespace

void query_targets(std::vector<DrainTarget>& targets, const DrainSettings& s) {
  const ClusterKey key = load_cluster_key(s.key_file);
  // One thread per target: a dead one costs its timeout once, not once per target.
  std::vector<std::thread> threads;
  for (auto& t : targets) threads.emplace_back([&t, &s, &key] { query_target(t, s, key); });
  for (auto& th : threads) th.join();
}

void plan_only(std::vector<DrainJob>& jobs, std::vector<DrainTarget> targets, const DrainSettings&) {
  for (auto& j : jobs) {
    if (j.outcome != "pending") continue;
    // Slots are a matter of time, not of room: the plan assumes each migration ends before the next.
    for (auto& t : targets)
      if (t.capacity) t.capacity->incoming = 0;
    const TargetChoice c = choose_target(j.domain, targets, {});
    if (c.target) {
      j.outcome = "planned";
      j.target = c.target;
      j.why = c.why;
      place_on(targets[*c.target], j.domain);
      moved_to(targets[*c.target]);
    } else {
      j.outcome = "no-room";
      j.why = c.why;
    }
  }
}

void run_drain(std::vector<DrainJob>& jobs, std::vector<DrainTarget>& targets, const DrainSettings& s,
               const std::atomic<bool>& cancel, const DrainObserver& observe) {
  Drain(jobs, targets, s, cancel, observe).run();
}

}  // namespace hymig::cli
