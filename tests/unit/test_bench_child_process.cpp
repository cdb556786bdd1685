// The benchmark suite's child processes: how hymig-bench reads the line a tool prints when it is
// ready (its listening address).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "bench/suite/child_process.hpp"

namespace hymig::bench {
namespace {

namespace fs = std::filesystem;

// A tool whose line is written in two pieces (an unbuffered std::cerr: the marker, then the
// address) is read whole, never as the marker with nothing after it. The reader got '' here, and a
// stream baseline of the full suite failed with "expected HOST:PORT, got ''".
TEST(BenchChildProcess, WaitForLineTakesOnlyACompleteLine) {
  const fs::path dir = fs::temp_directory_path() / ("hymig-wait-for-line-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string err = (dir / "err").string();
  {
    ChildProcess tool(
        {"/bin/sh", "-c", "printf 'tool: listening on ' >&2; sleep 0.3; printf '127.0.0.1:7470\\n' >&2; sleep 10"},
        (dir / "out").string(), err);
    const auto endpoint = wait_for_line(tool, err, "listening on ", std::chrono::seconds(5));
    ASSERT_TRUE(endpoint.has_value());
    EXPECT_EQ(*endpoint, "127.0.0.1:7470");
    tool.stop(SIGKILL, std::chrono::seconds(2));
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hymig::bench
