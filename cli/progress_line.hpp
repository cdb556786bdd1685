// The live progress line on a terminal: rewritten in place on stderr, cleared at the end.
#pragma once

#include "transport/source_engine.hpp"

namespace hymig::cli {

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}
  ~ProgressLine() { clear(); }
  void show(const LiveProgress& p);
  void clear();

 private:
  bool enabled_;
  bool shown_ = false;
};

}  // namespace hymig::cli
