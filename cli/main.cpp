// hymig: live migration of memory images over a hybrid transport. Dispatches to subcommands.
#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "protocol/wire.hpp"

namespace {

const char* kUsage =
    "usage: hymig COMMAND [OPTIONS]\n"
    "\n"
    "Moves a memory image (a VM's RAM, or any large image) to another host: pages stream over UDP\n"
    "in rounds, the final delta goes over TCP, both sides verify a digest, then hand over. Every\n"
    "session is authenticated by the cluster key (hymig keygen) and encrypted.\n"
    "\n"
    "commands:\n"
    "  serve     receive migrations (run on the destination)\n"
    "  migrate   send an image to a `hymig serve` (run on the source)\n"
    "  probe     show this host's links and the transports hymig would choose\n"
    "  keygen    write a new cluster key (copy it to every node)\n"
    "  status    what a daemon receives now, what it can take, its last results\n"
    "  drain     move every running libvirt domain of this node to other nodes\n"
    "\n"
    "`hymig COMMAND --help` describes each. Exit codes: 0 committed, 1 failed (the source runs on),\n"
    "2 usage error, 3 commit outcome unknown (the source stays paused).\n";

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);  // a vanished peer is an error return, not a death
  if (argc < 2) {
    std::cerr << kUsage;
    return hymig::cli::kExitUsage;
  }
  const std::string cmd = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "--version") {
    std::cout << "hymig " HYMIG_VERSION " (protocol " << hymig::kProtocolVersion << ")\n";
    return 0;
  }
  // The daemon logs timestamped lines (or journald's); the other commands speak to a person.
  hymig::set_log(cmd, cmd == "serve" ? hymig::LogStyle::service : hymig::LogStyle::command);
  try {
    if (cmd == "serve") return hymig::cli::run_serve(args);
    if (cmd == "migrate") return hymig::cli::run_migrate(args);
    if (cmd == "probe") return hymig::cli::run_probe(args);
    if (cmd == "keygen") return hymig::cli::run_keygen(args);
    if (cmd == "status") return hymig::cli::run_status(args);
    if (cmd == "drain") return hymig::cli::run_drain(args);
    std::cerr << "hymig: unknown command '" << cmd << "'\n\n" << kUsage;
    return hymig::cli::kExitUsage;
  } catch (const hymig::Error& e) {
    std::cerr << "hymig " << cmd << ": error: " << e.what() << "\n";
    return e.kind() == hymig::ErrorKind::usage ? hymig::cli::kExitUsage : hymig::cli::kExitFailed;
  } catch (const std::exception& e) {
    std::cerr << "hymig " << cmd << ": error: " << e.what() << "\n";
    return hymig::cli::kExitFailed;
  }
}
