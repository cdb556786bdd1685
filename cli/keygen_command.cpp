// hymig keygen: writes a new cluster key. Every node of a cluster needs the same file: make it once,
// copy it (root only, mode 0600) to /etc/hymig/cluster.key on each.
#include <iostream>

#include "cli/command.hpp"
#include "core/error.hpp"

namespace hymig::cli {

int run_keygen(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("file", po::value<std::string>(), "where to write the key (never replaced if it exists)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  try {
    for (const auto& a : args)
      if (a == "--help" || a == "-h") {
        std::cout << "usage: hymig keygen FILE\n\n"
                     "Writes a new random cluster key (32 bytes as 64 hex digits) to FILE, mode 0600; an existing\n"
                     "FILE is never replaced. `hymig serve` and `hymig migrate` admit only a peer that proves it\n"
                     "holds the same key (--key-file, default /etc/hymig/cluster.key). Copy the file to every node:\n"
                     "  hymig keygen /etc/hymig/cluster.key && scp -p /etc/hymig/cluster.key node2:/etc/hymig/\n";
        return kExitOk;
      }
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorKind::usage, std::string(e.what()) + " (see hymig keygen --help)");
  }
  if (!vm.count("file")) throw Error(ErrorKind::usage, "hymig keygen FILE: name the file to write (e.g. /etc/hymig/cluster.key)");
  const std::string path = vm["file"].as<std::string>();
  const ClusterKey key = write_new_cluster_key(path);
  std::cerr << "hymig keygen: wrote a new cluster key to " << path << " (id " << key.id()
            << "); copy it to every node, mode 0600\n";
  return kExitOk;
}

}  // namespace hymig::cli
