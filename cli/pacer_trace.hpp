// `hymig migrate --trace-pacer FILE`: one CSV line per feedback sample, what the receiver reported
// and what the pacer made of it. Diagnosing a rate (a shared link, a lossy one) needs the pacer's
// view sample by sample; docs/protocol.md ("Pacing") says what each column means.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "engine/pacer.hpp"

namespace hymig::cli {

class PacerTrace {
 public:
  // Opens FILE for appending (several sessions may share one file: the `start` column tells them
  // apart) and writes the header if the file is empty. Throws Error(io) if it cannot.
  explicit PacerTrace(const std::string& path);
  void add(std::uint32_t round, const FeedbackSample& s, const PacerState& st);
  // Flushes; throws Error(io) if anything written was lost (a full disk).
  void close();

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::string path_;
  std::unique_ptr<std::FILE, Closer> file_;
  double start_unix_ = 0;
};

}  // namespace hymig::cli
