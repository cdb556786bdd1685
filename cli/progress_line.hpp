// Live progress on stderr: a line rewritten in place on a terminal, or one JSON object per update
// (for schedulers and the benchmark, which plot a migration's rate over time).
#pragma once

#include "engine/source_engine.hpp"

namespace hymig::cli {

class ProgressLine {
 public:
  enum class Mode { off, terminal, json };
  explicit ProgressLine(Mode mode) : mode_(mode) {}
  ~ProgressLine() { clear(); }
  void show(const LiveProgress& p);
  void clear();

 private:
  Mode mode_;
  bool shown_ = false;
};

}  // namespace hymig::cli
