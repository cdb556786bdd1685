// A drain request from a peer (the `drain` query's args: docs/protocol.md, "Queries") as the
// command line of the child `hymig drain` the daemon runs. The peer proved the cluster key, yet
// every key must be known and every value typed, bounded and a plain value (never an option of its
// own, no list separators): Error{protocol} naming what is wrong.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hymig {

std::vector<std::string> drain_command_line(const std::string& hymig, const std::string& key_file, const std::string& connect,
                                            const nlohmann::json& args);

}  // namespace hymig
