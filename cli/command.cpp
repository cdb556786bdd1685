#include "cli/command.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "core/error.hpp"

namespace hymig::cli {

void store_config(std::istream& in, const po::options_description& desc, po::variables_map& vm) {
  po::store(po::parse_config_file(in, desc), vm);
}

bool parse_options(const std::string& command, const std::string& synopsis, const std::string& epilog,
                   po::options_description& desc, const std::vector<std::string>& args, po::variables_map& vm,
                   const char* default_config) {
  desc.add_options()("config", po::value<std::string>(),
                     default_config ? "read options from FILE (KEY = VALUE per line, every option above is a key; the "
                                      "command line wins); default $HYMIG_CONFIG, else /etc/hymig/hymig.conf if it exists"
                                    : "read options from FILE (KEY = VALUE per line; the command line wins)")(
      "help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: hymig " << command << " " << synopsis << "\n\n" << desc << "\n" << epilog;
      return false;
    }
    std::string path = vm.count("config") ? vm["config"].as<std::string>() : std::string();
    if (path.empty() && default_config) {
      const char* env = std::getenv("HYMIG_CONFIG");
      if (env && *env) path = env;  // named: must exist
      else if (::access(default_config, F_OK) == 0) path = default_config;
    }
    if (!path.empty()) {
      std::ifstream in(path);
      if (!in) throw Error(ErrorKind::usage, "cannot read config file '" + path + "'");
      store_config(in, desc, vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorKind::usage, std::string(e.what()) + " (see hymig " + command + " --help)");
  }
  return true;
}

std::chrono::milliseconds timeout_option(const po::variables_map& vm, const char* name) {
  const double s = vm[name].as<double>();
  if (!(s > 0 && s <= 86400)) throw Error(ErrorKind::usage, std::string("--") + name + " must be more than 0 and at most 86400 seconds");
  return std::chrono::milliseconds(std::max<long>(1, static_cast<long>(s * 1000)));
}

std::optional<FinalDeltaMethod> final_delta_option(const std::string& option, const char* env) {
  std::string v = option;
  const bool from_env = v == "auto" && env && *env;
  if (from_env) v = env;
  if (v == "write") return FinalDeltaMethod::write;
  if (v == "send") return FinalDeltaMethod::send;
  if (v == "auto" && !from_env) return std::nullopt;
  throw Error(ErrorKind::usage, from_env ? "HYMIG_FINAL_DELTA='" + printable(v, 64) + "': use send or write (or unset it)"
                                         : "--final-delta must be auto, write or send");
}

void add_key_options(po::options_description& desc) {
  desc.add_options()("key-file", po::value<std::string>(),
                     "the cluster key (made by `hymig keygen FILE`, mode 0600, the same on every node); default "
                     "$HYMIG_KEY_FILE, else /etc/hymig/cluster.key")(
      "secret-file", po::value<std::string>(), "old name of --key-file");
}

std::string key_file_path(const po::variables_map& vm) {
  if (vm.count("key-file") && vm.count("secret-file"))
    throw Error(ErrorKind::usage, "give --key-file or its old name --secret-file, not both");
  const std::string given = vm.count("key-file")      ? vm["key-file"].as<std::string>()
                            : vm.count("secret-file") ? vm["secret-file"].as<std::string>()
                                                      : std::string();
  return resolve_key_file(given);
}

ClusterKey load_key(const po::variables_map& vm) { return load_cluster_key(key_file_path(vm)); }

namespace {
std::atomic<bool> g_stop_requested{false};
void on_stop_signal(int) { g_stop_requested = true; }
}  // namespace

const std::atomic<bool>& stop_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  return g_stop_requested;
}

std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw_errno("cannot find this program (/proc/self/exe)");
  return std::string(buf, std::size_t(n));
}

}  // namespace hymig::cli
