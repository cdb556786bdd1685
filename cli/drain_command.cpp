// hymig drain: empties this node of running libvirt domains, each migrated live by hymig to the
// target with the most room (its daemon's authenticated status), --parallel at a time, with
// timeouts, retries elsewhere and a report of every domain's fate. The exit code tells a
// scheduler the truth: 0 only when no domain runs here any more.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>
#include <iostream>

#include <fmt/format.h>

#include "cli/command.hpp"
#include "cli/daemon_client.hpp"
#include "cli/drain_runner.hpp"
#include "cli/peer_json.hpp"
#include "core/error.hpp"
#include "core/units.hpp"
#include "policy/host_capacity.hpp"
#include "protocol/wire.hpp"
#include "vm/domain_survey.hpp"

namespace hymig::cli {
namespace {


std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s + ",") {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

std::vector<std::string> read_targets_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::usage, "cannot read --targets-file '" + path + "'");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    for (auto& t : split_list(line)) out.push_back(t);
  }
  return out;
}

double seconds_option(const po::variables_map& vm, const char* name, double min) {
  const double v = vm[name].as<double>();
  if (!(v >= min)) throw Error(ErrorKind::usage, fmt::format("--{} must be at least {}", name, min));
  return v;
}


constexpr const char kStateWidth[] = "{:<24} {:>9}  {:<22} {:<12} {}\n";

// One domain as the live table and the daemon's status show it.
nlohmann::json job_row(const DrainJob& j, const std::vector<DrainTarget>& targets) {
  nlohmann::json r = {{"name", j.domain.name}, {"ram_bytes", j.domain.ram_bytes}, {"outcome", j.outcome},
                      {"target", j.target ? targets[*j.target].address : ""}};
  if (j.outcome == "running") {
    r["phase"] = j.phase;
    r["round"] = j.round;
    r["fraction"] = j.fraction;
    r["rate"] = j.rate;
  } else if (j.outcome == "moved" && !j.attempts.empty()) {
    r["seconds"] = j.attempts.back().seconds;
    r["attempts"] = j.attempts.size();
  }
  const std::string why = j.outcome == "not-movable" ? j.why_not : j.why;
  if (!why.empty()) r["why"] = why;
  return r;
}

nlohmann::json job_rows(const std::vector<DrainJob>& jobs, const std::vector<DrainTarget>& targets) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& j : jobs) rows.push_back(job_row(j, targets));
  return rows;
}

// A row as a table line (rows may come from a daemon: every field read defensively).
std::string row_line(const nlohmann::json& r) {
  const auto str = [&](const char* k) { return json_text(r, k); };
  const auto num = [&](const char* k) { return json_number(r, k); };
  const std::string outcome = str("outcome");
  std::string detail;
  if (outcome == "running")
    detail = fmt::format("{} round {:.0f} {:.0f}%  {:.2f} Gbit/s", str("phase"), num("round"), num("fraction") * 100,
                         num("rate") * 8 / 1e9);
  else if (outcome == "moved") {
    double n = num("attempts"), seconds = num("seconds");
    if (r.contains("attempts") && r["attempts"].is_array() && !r["attempts"].empty()) {
      n = double(r["attempts"].size());
      const auto& last = r["attempts"].back();
      if (last.is_object() && last.contains("seconds") && last["seconds"].is_number()) seconds = last["seconds"].get<double>();
    }
    detail = fmt::format("in {:.1f} s{}", seconds, n > 1 ? fmt::format(" (attempt {:.0f})", n) : "");
  }
  else
    detail = str("why");
  const std::string target = str("target");
  return fmt::format(fmt::runtime(kStateWidth), str("name"), format_bytes(num("ram_bytes")), target.empty() ? "-" : target,
                     outcome, detail);
}

// On a terminal: the table redrawn in place.
class LiveTable {
 public:
  explicit LiveTable(bool on) : on_(on) {}
  void show(const nlohmann::json& rows) {
    if (!on_ || !rows.is_array()) return;
    std::string out;
    if (lines_) out += fmt::format("\033[{}A", lines_);
    out += "\033[J" + fmt::format(fmt::runtime(kStateWidth), "DOMAIN", "RAM", "TARGET", "STATE", "");
    for (const auto& r : rows) {
      std::string l = row_line(r);
      if (l.size() > 160) l = l.substr(0, 157) + "...\n";
      out += l;
    }
    lines_ = rows.size() + 1;
    std::cerr << out << std::flush;
  }

 private:
  bool on_;
  std::size_t lines_ = 0;
};

nlohmann::json report_json(const std::vector<DrainJob>& jobs, const std::vector<DrainTarget>& targets,
                           const std::vector<std::pair<std::string, std::string>>& remaining, bool dry_run, bool cancelled,
                           double seconds, const DrainSettings& s) {
  nlohmann::json t = nlohmann::json::array();
  for (const auto& tg : targets) {
    nlohmann::json x = {{"address", tg.address}, {"reachable", tg.capacity.has_value()}};
    if (tg.capacity) x["capacity"] = to_json(*tg.capacity);
    else x["error"] = tg.unreachable;
    t.push_back(std::move(x));
  }
  nlohmann::json d = nlohmann::json::array();
  for (const auto& j : jobs) {
    nlohmann::json x = {{"name", j.domain.name}, {"ram_bytes", j.domain.ram_bytes}, {"hugepage_bytes", j.domain.hugepage_bytes},
                        {"outcome", j.outcome}};
    if (j.target) x["target"] = targets[*j.target].address;
    if (!j.why.empty() || !j.movable) x["why"] = j.outcome == "not-movable" ? j.why_not : j.why;
    if (!j.movable) x["not_movable"] = j.why_not;
    nlohmann::json a = nlohmann::json::array();
    for (const auto& at : j.attempts) {
      nlohmann::json y = {{"target", at.target}, {"outcome", at.outcome}, {"started_s", at.started_s}, {"seconds", at.seconds}, {"exit_code", at.exit_code}};
      if (!at.error.empty()) y["error"] = at.error;
      if (!at.report.is_null()) y["report"] = at.report;
      a.push_back(std::move(y));
    }
    x["attempts"] = std::move(a);
    d.push_back(std::move(x));
  }
  nlohmann::json rem = nlohmann::json::array();
  for (const auto& [name, why] : remaining) rem.push_back({{"name", name}, {"why", why}});
  return {{"dry_run", dry_run}, {"cancelled", cancelled}, {"source", s.connect.empty() ? "default" : s.connect},
          {"parallel", s.parallel}, {"seconds", seconds}, {"targets", t}, {"domains", d}, {"remaining", rem}};
}

// The report (local, or a daemon's) as text.
void print_text(const nlohmann::json& rep) {
  const auto arr = [&](const char* k) { return rep.contains(k) && rep[k].is_array() ? rep[k] : nlohmann::json::array(); };
  for (const auto& t : arr("targets")) {
    const std::string a = t.contains("address") && t["address"].is_string() ? printable(t["address"].get<std::string>(), 300) : "?";
    try {
      const HostCapacity c = capacity_from_json(t.at("capacity"));
      std::cout << fmt::format("target {}: {} available, {} of {} incoming\n", a, format_bytes(double(c.memory_available)),
                               c.incoming, c.max_incoming);
    } catch (const std::exception&) {
      std::cout << fmt::format("target {}: unreachable ({})\n", a,
                               t.contains("error") && t["error"].is_string() ? printable(t["error"].get<std::string>(), 300) : "?");
    }
  }
  const bool dry_run = rep.value("dry_run", false);
  std::cout << fmt::format(fmt::runtime(kStateWidth), "DOMAIN", "RAM", "TARGET", dry_run ? "PLAN" : "OUTCOME", "");
  for (const auto& d : arr("domains")) std::cout << row_line(d);
  const auto remaining = arr("remaining");
  const std::size_t domains = arr("domains").size();
  if (dry_run) {
    std::cout << fmt::format("dry run: {} of {} domains have a target\n", domains - std::min(domains, remaining.size()), domains);
    return;
  }
  const double seconds = rep.contains("seconds") && rep["seconds"].is_number() ? rep["seconds"].get<double>() : 0;
  std::cout << fmt::format("drain {}in {:.1f} s: {} domain{} running here\n", rep.value("cancelled", false) ? "cancelled " : "",
                           seconds, remaining.size(), remaining.size() == 1 ? " still" : "s still");
  for (const auto& r : remaining)
    if (r.is_object() && r.contains("name") && r["name"].is_string() && r.contains("why") && r["why"].is_string())
      std::cout << "  " << printable(r["name"].get<std::string>(), 200) << ": " << printable(r["why"].get<std::string>(), 600)
                << "\n";
}

// --node: the daemon there drains its own node; without --async this waits for it, showing its table.
int drain_by_daemon(const std::string& node, const ClusterKey& key, const nlohmann::json& args, bool async,
                    const std::string& format, bool table_on, const std::atomic<bool>& cancel) {
  const auto timeout = std::chrono::seconds(10);
  const nlohmann::json a = query_daemon(node, key, "drain", args, timeout);
  if (!a.value("accepted", false))
    throw Error(ErrorKind::refused, node + " did not start the drain: " +
                                        (a.contains("error") && a["error"].is_string() ? printable(a["error"].get<std::string>()) : "no reason given"));
  if (async) {
    if (format == "json") std::cout << nlohmann::json({{"accepted", true}, {"node", node}}).dump(2) << std::endl;
    else if (format == "text") std::cout << "the drain runs on " << node << ": `hymig status " << node << "` shows it\n";
    return kExitOk;
  }
  LiveTable table(table_on);
  bool cancel_sent = false;
  while (true) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (cancel.load() && !cancel_sent) {
      query_daemon(node, key, "drain_cancel", nlohmann::json::object(), timeout);
      cancel_sent = true;
    }
    nlohmann::json st;
    try {
      st = query_daemon(node, key, "status", nlohmann::json::object(), timeout);
    } catch (const Error& e) {
      std::cerr << "hymig drain: warning: " << node << " did not answer: " << e.what() << "\n";
      continue;
    }
    const auto d = st.find("drain");
    if (d == st.end() || !d->is_object()) throw Error(ErrorKind::protocol, node + "'s status has no drain");
    if (d->contains("live")) table.show((*d)["live"]);
    if (d->value("state", "") != "done") continue;
    const int code = d->contains("exit_code") && (*d)["exit_code"].is_number_integer() ? (*d)["exit_code"].get<int>() : kExitFailed;
    if (d->contains("report") && (*d)["report"].is_object()) {
      if (format == "json") std::cout << (*d)["report"].dump(2) << std::endl;
      else if (format == "text") print_text((*d)["report"]);
    } else if (d->contains("error") && (*d)["error"].is_string()) {
      std::cerr << "hymig drain: the drain on " << node << " failed: " << printable((*d)["error"].get<std::string>()) << "\n";
    }
    return code == kExitOk ? kExitOk : code == kExitUsage ? kExitUsage : kExitFailed;
  }
}

}  // namespace

int run_drain(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()
      ("targets", po::value<std::string>(), "HOST:PORT,... of the target nodes' `hymig serve --libvirt`")
      ("targets-file", po::value<std::string>(), "a file of targets, one or more per line (# comments); with or instead of --targets")
      ("connect", po::value<std::string>(), "this node's libvirt URI (default: libvirt's own default, e.g. qemu:///system)")
      ("parallel", po::value<unsigned>()->default_value(2), "migrations out of this node at once (1-16)")
      ("bandwidth", po::value<std::string>(), "pace each migration at this rate (e.g. 500M = 500 MiB/s, 4gbit); default: adaptive")
      ("total-bandwidth", po::value<std::string>(), "at most this rate for all migrations together (each gets its share of --parallel)")
      ("completion-timeout-per-gib", po::value<double>()->default_value(150), "abort a migration not done within this many seconds per GiB of its RAM (at least one GiB's worth); the guest stays here")
      ("progress-timeout", po::value<double>()->default_value(150), "abort a migration that moved nothing for this many seconds; the guest stays here")
      ("retries", po::value<unsigned>()->default_value(2), "retries of a failed domain, each on a target it has not failed on while there is one")
      ("retry-delay", po::value<double>()->default_value(20), "seconds before a domain's first retry, doubling each time")
      ("headroom", po::value<std::string>(), "memory to leave free on each target (default: 5 % of its memory, at most 1G)")
      ("fallback", po::value<std::string>()->default_value("none"), "none, or native: a domain hymig cannot move goes by libvirt's own live migration (hymig migrate --fallback native)")
      ("timeout", po::value<double>()->default_value(10.0), "each migration's --timeout: seconds a target may stay silent")
      ("bind", po::value<std::string>(), "each migration leaves from this local address")
      ("dry-run", po::bool_switch(), "print the plan (each domain -> target and why, or why it cannot move) and exit")
      ("report", po::value<std::string>()->default_value("text"), "the result on stdout: text, json or none")
      ("progress", po::value<std::string>()->default_value("auto"), "the live table on stderr: auto (on a terminal), on, off, or json (one line of every domain's state ~2 a second)")
      ("node", po::value<std::string>(), "HOST:PORT of another node's `hymig serve --libvirt`: that daemon drains its own node (same options)")
      ("async", po::bool_switch(), "with --node: return once the daemon started the drain (`hymig status HOST:PORT` follows it)")
      ("cancel", po::bool_switch(), "with --node: cancel the drain that daemon runs");
  add_key_options(desc);
  po::variables_map vm;
  if (!parse_options("drain", "--targets H:P,... [--parallel N] [--dry-run] [options]",
                     "Moves every running domain of this node's libvirt to the target nodes, each by `hymig migrate\n"
                     "--domain` (the guest runs on here if a migration fails). Each target's daemon reports on an\n"
                     "authenticated query its free memory (huge pages and the space for RAM files included) and the\n"
                     "migrations it receives; a domain goes to the target with the most room left after it, never to\n"
                     "one without room for it, and never to more at once than the target's --max-incoming. Largest\n"
                     "domains go first: they are the hardest to place, and the longest migrations start first.\n"
                     "\n"
                     "A failed migration is retried after --retry-delay (doubling) on another target, at most\n"
                     "--retries times. SIGINT/SIGTERM cancels: nothing new starts, a running migration stops before\n"
                     "its pause (the guest runs on here) or, already paused, finishes; the report says which.\n"
                     "\n"
                     "With --node HOST:PORT the daemon there drains its own node (it must run `hymig serve\n"
                     "--libvirt`); this command follows it (Ctrl-C cancels it there) or, with --async, returns once it\n"
                     "started: the hand-off for a scheduler's hook (contrib/slurm/).\n"
                     "\n"
                     "Exit codes: 0 no domain runs on this node any more (after --dry-run: every domain has a\n"
                     "target; with --async: the daemon started the drain); 1 some remain (listed with the reason)\n"
                     "or the daemon refused; 2 usage error.\n",
                     desc, args, vm))
    return kExitOk;

  // SIGINT/SIGTERM cancels the drain: this one, or (--node) the daemon's it follows.
  const std::atomic<bool>& cancel = stop_on_signals();
  const bool remote = vm.count("node") > 0;
  for (const char* o : {"async", "cancel"})
    if (vm[o].as<bool>() && !remote) throw Error(ErrorKind::usage, std::string("--") + o + " goes with --node HOST:PORT");
  if (remote) {
    for (const char* o : {"connect", "bind"})
      if (vm.count(o)) throw Error(ErrorKind::usage, std::string("--") + o + " does not go with --node: that daemon uses its own");
    if (vm["cancel"].as<bool>()) {
      const std::string node = vm["node"].as<std::string>();
      const nlohmann::json a = query_daemon(node, load_key(vm), "drain_cancel", nlohmann::json::object(), std::chrono::seconds(10));
      const bool cancelled = a.value("cancelled", false);
      std::cout << (cancelled ? "cancelling the drain on " : "no drain runs on ") << node << "\n";
      return cancelled ? kExitOk : kExitFailed;
    }
  }
  DrainSettings s;
  std::vector<std::string> addresses;
  if (vm.count("targets")) addresses = split_list(vm["targets"].as<std::string>());
  if (vm.count("targets-file"))
    for (auto& t : read_targets_file(vm["targets-file"].as<std::string>())) addresses.push_back(t);
  if (addresses.empty()) throw Error(ErrorKind::usage, "give the targets: --targets HOST:PORT,... or --targets-file FILE");
  for (const auto& a : addresses)
    if (a.find(':') == std::string::npos) throw Error(ErrorKind::usage, "target '" + a + "' is not HOST:PORT");
  s.parallel = vm["parallel"].as<unsigned>();
  if (s.parallel < 1 || s.parallel > 16) throw Error(ErrorKind::usage, "--parallel must be 1..16");
  if (vm.count("bandwidth")) s.bandwidth = parse_rate(vm["bandwidth"].as<std::string>(), "--bandwidth");
  if (vm.count("total-bandwidth")) s.total_bandwidth = parse_rate(vm["total-bandwidth"].as<std::string>(), "--total-bandwidth");
  if ((vm.count("bandwidth") && s.bandwidth < 65536) || (vm.count("total-bandwidth") && s.total_bandwidth < 65536 * s.parallel))
    throw Error(ErrorKind::usage, "--bandwidth (and --total-bandwidth per migration) below 64 KiB/s is not useful");
  s.completion_timeout_per_gib = seconds_option(vm, "completion-timeout-per-gib", 1);
  s.progress_timeout = seconds_option(vm, "progress-timeout", 1);
  s.retries = vm["retries"].as<unsigned>();
  if (s.retries > 10) throw Error(ErrorKind::usage, "--retries must be 0..10");
  s.retry_delay = seconds_option(vm, "retry-delay", 0);
  s.migrate_timeout = seconds_option(vm, "timeout", 0.1);
  if (vm.count("headroom")) s.headroom = parse_size(vm["headroom"].as<std::string>(), "--headroom");
  s.fallback = vm["fallback"].as<std::string>();
  if (s.fallback != "none" && s.fallback != "native") throw Error(ErrorKind::usage, "--fallback must be none or native");
  if (vm.count("bind")) s.bind = vm["bind"].as<std::string>();
  if (vm.count("connect")) s.connect = vm["connect"].as<std::string>();
  const std::string format = vm["report"].as<std::string>();
  if (format != "text" && format != "json" && format != "none") throw Error(ErrorKind::usage, "--report must be text, json or none");
  const std::string progress = vm["progress"].as<std::string>();
  if (progress != "auto" && progress != "on" && progress != "off" && progress != "json")
    throw Error(ErrorKind::usage, "--progress must be auto, on, off or json");
  const bool dry_run = vm["dry-run"].as<bool>();
  const bool table_on = progress == "on" || (progress == "auto" && ::isatty(STDERR_FILENO));
  if (remote) {
    // The options given here, for the daemon's drain (it checks them again).
    nlohmann::json a = {{"targets", addresses}};
    for (const char* o : {"parallel", "retries"})
      if (!vm[o].defaulted()) a[o] = vm[o].as<unsigned>();
    for (const char* o : {"completion-timeout-per-gib", "progress-timeout", "retry-delay", "timeout"})
      if (!vm[o].defaulted()) {
        std::string k = o;
        std::replace(k.begin(), k.end(), '-', '_');
        a[k] = vm[o].as<double>();
      }
    for (const char* o : {"bandwidth", "total-bandwidth", "headroom"})
      if (vm.count(o)) {
        std::string k = o;
        std::replace(k.begin(), k.end(), '-', '_');
        a[k] = vm[o].as<std::string>();
      }
    if (s.fallback != "none") a["fallback"] = s.fallback;
    if (dry_run) a["dry_run"] = true;
    return drain_by_daemon(vm["node"].as<std::string>(), load_key(vm), a, vm["async"].as<bool>(), format, table_on, cancel);
  }
  (void)load_key(vm);  // a missing or unusable key is a usage error now, not a failed migration each
  s.key_file = key_file_path(vm);
  s.hymig = self_path();

  const auto start = std::chrono::steady_clock::now();

  std::vector<DrainJob> jobs;
  for (const auto& d : vm::survey_running_domains(s.connect)) {
    DrainJob j;
    j.domain = {d.name, d.ram_bytes, d.hugepage_bytes};
    j.movable = d.movable;
    j.why_not = d.why_not;
    if (!d.movable && s.fallback == "none") j.outcome = "not-movable";
    jobs.push_back(std::move(j));
  }
  std::vector<DrainJob> ordered = jobs;
  {
    std::vector<DrainDomain> doms;
    for (const auto& j : jobs) doms.push_back(j.domain);
    order_for_drain(doms);
    for (std::size_t i = 0; i < doms.size(); ++i)
      for (const auto& j : jobs)
        if (j.domain.name == doms[i].name) ordered[i] = j;
  }
  jobs = std::move(ordered);

  std::vector<DrainTarget> targets;
  for (const auto& a : addresses) targets.push_back(DrainTarget{a, std::nullopt, "", 0, 0, 0, 0});
  query_targets(targets, s);

  if (dry_run) plan_only(jobs, targets, s);
  else {
    LiveTable table(table_on);
    run_drain(jobs, targets, s, cancel, [&](const std::vector<DrainJob>& j, const std::vector<DrainTarget>& t) {
      const nlohmann::json rows = job_rows(j, t);
      if (progress == "json") std::cerr << nlohmann::json({{"drain", rows}}).dump() << std::endl;
      table.show(rows);
    });
  }

  // The truth, from libvirt: what runs here now.
  std::vector<std::pair<std::string, std::string>> remaining;
  if (dry_run) {
    for (const auto& j : jobs)
      if (j.outcome != "planned") remaining.emplace_back(j.domain.name, j.outcome == "not-movable" ? j.why_not : j.why);
  } else {
    for (const auto& d : vm::survey_running_domains(s.connect)) {
      std::string why = "it was not running when the drain began";
      for (const auto& j : jobs)
        if (j.domain.name == d.name) why = j.outcome + ": " + (j.outcome == "not-movable" ? j.why_not : j.why);
      remaining.emplace_back(d.name, why);
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const nlohmann::json report = report_json(jobs, targets, remaining, dry_run, cancel.load(), seconds, s);
  if (format == "json") std::cout << report.dump(2) << std::endl;
  else if (format == "text") print_text(report);
  return remaining.empty() ? kExitOk : kExitFailed;
}

}  // namespace hymig::cli
