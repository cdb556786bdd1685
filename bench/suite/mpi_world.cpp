#include "bench/suite/mpi_world.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace hymig::bench {
namespace {
// Polls `done` every millisecond: OpenMPI's blocking calls busy-poll, and a rank waiting in one
// while its partner's run was measured spun ~70 % of a core, taken from the measured transports on
// a 2-core host (hymig, with three busy threads, lost the most).
template <typename Done>
void wait_sleeping(Done done) {
  while (!done()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}
}  // namespace

MpiWorld::MpiWorld(int& argc, char**& argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiWorld::~MpiWorld() { MPI_Finalize(); }

std::string MpiWorld::processor_name() const {
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  return std::string(name, static_cast<std::size_t>(len));
}

void MpiWorld::barrier() const {
  MPI_Request request;
  MPI_Ibarrier(MPI_COMM_WORLD, &request);
  wait_sleeping([&] {
    int done = 0;
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    return done != 0;
  });
}

void MpiWorld::send(int to, const std::string& s) const {
  MPI_Send(s.data(), static_cast<int>(s.size()), MPI_CHAR, to, 0, MPI_COMM_WORLD);
}

std::string MpiWorld::receive(int from) const {
  MPI_Status st;
  wait_sleeping([&] {
    int ready = 0;
    MPI_Iprobe(from, 0, MPI_COMM_WORLD, &ready, &st);
    return ready != 0;
  });
  int n = 0;
  MPI_Get_count(&st, MPI_CHAR, &n);
  std::string s(static_cast<std::size_t>(n), '\0');
  MPI_Recv(s.data(), n, MPI_CHAR, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return s;
}

std::vector<std::string> MpiWorld::gather(const std::string& s) const {
  int n = static_cast<int>(s.size());
  std::vector<int> sizes(static_cast<std::size_t>(size_));
  MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<int> offsets(static_cast<std::size_t>(size_));
  int total = 0;
  for (int i = 0; i < size_; ++i) {
    offsets[static_cast<std::size_t>(i)] = total;
    total += sizes[static_cast<std::size_t>(i)];
  }
  std::string all(rank_ == 0 ? static_cast<std::size_t>(total) : 0, '\0');
  MPI_Gatherv(s.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, 0, MPI_COMM_WORLD);
  std::vector<std::string> out;
  if (rank_ == 0)
    for (int i = 0; i < size_; ++i)
      out.push_back(all.substr(static_cast<std::size_t>(offsets[static_cast<std::size_t>(i)]),
                               static_cast<std::size_t>(sizes[static_cast<std::size_t>(i)])));
  return out;
}

std::string MpiWorld::broadcast(const std::string& s) const {
  int n = static_cast<int>(s.size());
  MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::string out = rank_ == 0 ? s : std::string(static_cast<std::size_t>(n), '\0');
  MPI_Bcast(out.data(), n, MPI_CHAR, 0, MPI_COMM_WORLD);
  return out;
}

bool MpiWorld::all(bool mine) const {
  int v = mine ? 1 : 0, r = 0;
  MPI_Allreduce(&v, &r, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return r == 1;
}

void MpiWorld::abort(int code) const {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace hymig::bench
