// Shared pieces of the hymig subcommands: exit codes, option parsing with a config file, and
// loading the cluster key.
#pragma once

#include <boost/program_options.hpp>
#include <atomic>
#include <chrono>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "protocol/wire.hpp"
#include "security/cluster_key.hpp"

namespace hymig::cli {

// Exit codes, documented in `hymig --help` and docs/operations.md.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;   // the migration failed; the source runs on
inline constexpr int kExitUsage = 2;    // bad command line or config file
inline constexpr int kExitUnknown = 3;  // commit sent but not confirmed; the source stays paused

namespace po = boost::program_options;

// The daemon's configuration file when no --config is given (and $HYMIG_CONFIG is unset).
inline constexpr const char* kDefaultConfigFile = "/etc/hymig/hymig.conf";

// Parses argv (after the subcommand name) into `vm`; options not on the command line are read from
// --config FILE (KEY = VALUE lines, same names without the dashes), else from $HYMIG_CONFIG or
// `default_config` when given and the file exists. Returns false after printing --help. Throws
// Error{usage} on anything wrong.
bool parse_options(const std::string& command, const std::string& synopsis, const std::string& epilog,
                   po::options_description& desc, const std::vector<std::string>& args, po::variables_map& vm,
                   const char* default_config = nullptr);

// A duration option in seconds (`name` without dashes): more than 0 and at most a day; NaN,
// infinities and larger values are refused (Error{usage}) rather than overflowing a clock.
std::chrono::milliseconds timeout_option(const po::variables_map& vm, const char* name);

// --final-delta: write or send, or auto: $HYMIG_FINAL_DELTA (write|send) when set (`env`, may be
// null), else nullopt (the engine's kDefaultFinalDelta). A bad value of either is Error{usage}.
std::optional<FinalDeltaMethod> final_delta_option(const std::string& option, const char* env);

// Stores a config file's KEY = VALUE lines (the same code for every command, and for the config
// fuzzer): po::error on what the description does not allow (parse_options turns it into
// Error{usage}).
void store_config(std::istream& in, const po::options_description& desc, po::variables_map& vm);

// --key-file FILE (and --secret-file, its old name) for `desc`.
void add_key_options(po::options_description& desc);

// The cluster key named by --key-file (or --secret-file, or the key-file config key), else
// $HYMIG_KEY_FILE, else /etc/hymig/cluster.key. Throws Error{usage} naming `hymig keygen` when it
// is missing or unusable: there is no unauthenticated mode.
ClusterKey load_key(const po::variables_map& vm);
// The path load_key reads (for a child process that must read the same key).
std::string key_file_path(const po::variables_map& vm);

// Installs SIGINT/SIGTERM handlers that set one process-wide flag, and returns it: how serve stops,
// and how migrate and drain cancel (each command runs alone in its process).
const std::atomic<bool>& stop_on_signals();

// This program's own path (/proc/self/exe), for the children it runs.
std::string self_path();

int run_serve(const std::vector<std::string>& args);
int run_migrate(const std::vector<std::string>& args);
int run_probe(const std::vector<std::string>& args);
int run_keygen(const std::vector<std::string>& args);
int run_status(const std::vector<std::string>& args);
int run_drain(const std::vector<std::string>& args);

}  // namespace hymig::cli
