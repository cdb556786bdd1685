// The MPI calls hymig-bench needs, as a small RAII wrapper: ranks pair up (0<->1, 2<->3, ...), the
// even rank sends and the odd rank receives; strings travel between partners and to rank 0.
#pragma once

#include <string>
#include <vector>

namespace hymig::bench {

class MpiWorld {
 public:
  MpiWorld(int& argc, char**& argv);
  ~MpiWorld();
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_sender() const { return rank_ % 2 == 0; }
  int partner() const { return rank_ ^ 1; }
  int pairs() const { return size_ / 2; }
  std::string processor_name() const;

  void barrier() const;
  void send(int to, const std::string& s) const;
  std::string receive(int from) const;
  // Rank 0 gets every rank's string (its own first); other ranks get an empty vector.
  std::vector<std::string> gather(const std::string& s) const;
  // Every rank gets rank 0's string.
  std::string broadcast(const std::string& s) const;
  // True when every rank passes true.
  bool all(bool mine) const;
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace hymig::bench
