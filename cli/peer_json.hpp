// Reading JSON that came from another process or host (a daemon's answer, a child's progress line)
// for display: a field of the wrong type reads as empty or 0, and every text goes through
// printable() (protocol/wire.hpp), so nothing a peer sends can break the output or the terminal.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "protocol/wire.hpp"

namespace hymig::cli {

inline std::string json_text(const nlohmann::json& j, const char* key, std::size_t max = 400) {
  const auto it = j.is_object() ? j.find(key) : j.end();
  return it != j.end() && it->is_string() ? printable(it->get<std::string>(), max) : std::string();
}

inline double json_number(const nlohmann::json& j, const char* key) {
  const auto it = j.is_object() ? j.find(key) : j.end();
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

}  // namespace hymig::cli
