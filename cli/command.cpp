#include "cli/command.hpp"

#include <fstream>
#include <iostream>
#include <sstream>

#include "transport/error.hpp"

namespace hymig::cli {

bool parse_options(const std::string& command, const std::string& synopsis, const std::string& epilog,
                   po::options_description& desc, const std::vector<std::string>& args, po::variables_map& vm) {
  desc.add_options()("config", po::value<std::string>(), "read options from FILE (KEY = VALUE per line; the command line wins)")(
      "help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: hymig " << command << " " << synopsis << "\n\n" << desc << "\n" << epilog;
      return false;
    }
    if (vm.count("config")) {
      const auto path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw Error(ErrorKind::usage, "cannot read config file '" + path + "'");
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorKind::usage, std::string(e.what()) + " (see hymig " + command + " --help)");
  }
  return true;
}

std::optional<std::string> read_secret(const po::variables_map& vm) {
  if (!vm.count("secret-file")) return std::nullopt;
  const auto path = vm["secret-file"].as<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::usage, "cannot read --secret-file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().empty()) throw Error(ErrorKind::usage, "--secret-file '" + path + "' is empty");
  return ss.str();
}

}  // namespace hymig::cli
