// hymig-notify-listen SOCKET OUT: stands in for systemd's notification socket (NOTIFY_SOCKET) in
// tests: binds a datagram socket at SOCKET and appends every message it gets to OUT (one message
// per line, its own newlines turned into spaces), until it is killed.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: hymig-notify-listen SOCKET OUT\n");
    return 2;
  }
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (std::strlen(argv[1]) >= sizeof a.sun_path) return 2;
  std::strcpy(a.sun_path, argv[1]);
  ::unlink(argv[1]);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("hymig-notify-listen: bind");
    return 1;
  }
  char buf[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) continue;
    std::string m(buf, std::size_t(n));
    for (char& c : m)
      if (c == '\n') c = ' ';
    if (FILE* f = std::fopen(argv[2], "a")) {
      std::fprintf(f, "%s\n", m.c_str());
      std::fclose(f);
    }
  }
}
