// The command line, the JSON report and main() shared by the one-buffer stream tools
// (hymig-tcpstream, hymig-udtstream): same options, same output, only the transport differs.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace hymig::bench {

struct StreamArgs {
  bool listen = false;
  std::string where;          // HOST:PORT to listen on or connect to
  std::uint64_t bytes = 0;    // sender: what to send; receiver: populate up front (0: learn from the sender)
  double max_seconds = 0;     // sender: cap (0: none)
};

// `about` is the help text's head (what the tool is, its timing rule). Returns nullopt after --help;
// throws Error{usage} for a wrong command line.
std::optional<StreamArgs> parse_stream_args(int argc, char** argv, const std::string& tool, const std::string& about);

// The wire format's only header: the buffer's length, 8 bytes little-endian.
using LengthHeader = std::array<std::byte, 8>;
LengthHeader encode_length_header(std::uint64_t bytes);
// Throws Error{protocol} for 0, more than 64 TiB, or (expect != 0) a length other than `expect`.
std::uint64_t decode_length_header(const LengthHeader& h, std::uint64_t expect, const std::string& tool);

// Sends [0, size) as send(offset, n). With a cap, in slices of `slice` bytes, stopping once
// max_seconds have passed since `start` (on a collapsed link the rate is the figure, and waiting
// for every byte would only make the benchmark slow). Returns the bytes sent.
std::uint64_t send_capped(std::uint64_t size, double max_seconds, std::uint64_t slice,
                          std::chrono::steady_clock::time_point start,
                          const std::function<void(std::uint64_t, std::uint64_t)>& send);

// One JSON line on stdout: role, bytes, complete, seconds, gbps (and prefault_seconds if given).
// The CPU this process spends from here on goes into the report's cpu_s.
void mark_cpu_start();
void print_stream_report(const char* role, std::uint64_t bytes, std::chrono::steady_clock::duration elapsed,
                         bool complete, std::optional<std::chrono::steady_clock::duration> prefault = std::nullopt);

// Runs `body`, turning errors into a message on stderr and exit codes (2 usage, 1 other).
int stream_tool_main(const std::string& tool, const std::function<int()>& body);

}  // namespace hymig::bench
