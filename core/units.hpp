// Sizes and rates as people type them: "1G", "256M", "4096", "10gbit".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace hymig {

// Bytes with binary suffixes: K, M, G, T (also KiB/KB/k...: all binary). Throws Error{usage}.
std::uint64_t parse_size(std::string_view text, std::string_view what);

// Bytes per second: a size as above ("256M" = 256 MiB/s), or bits per second with a decimal
// suffix ("500mbit", "10gbit", "1.5gbit"). Throws Error{usage}.
std::uint64_t parse_rate(std::string_view text, std::string_view what);

std::string format_bytes(double bytes);  // "1.5 GiB"
// "10 s", or "250 ms" when not whole seconds: timeouts in messages.
std::string format_timeout(std::chrono::milliseconds t);

}  // namespace hymig
