#include "cli/stale_partial_images.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <filesystem>

#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace hymig::cli {

bool is_partial_image_name(const std::string& name) {
  constexpr std::size_t kSuffix = 1 + 16 + 5;  // ".%016x.part"
  if (name.size() < 1 + 1 + kSuffix || name[0] != '.' || name.compare(name.size() - 5, 5, ".part") != 0) return false;
  const std::size_t dot = name.size() - kSuffix;
  if (name[dot] != '.') return false;
  for (std::size_t i = dot + 1; i < dot + 17; ++i)
    if (!std::isxdigit(static_cast<unsigned char>(name[i])) || std::isupper(static_cast<unsigned char>(name[i]))) return false;
  return true;
}

std::vector<std::string> remove_stale_partial_images(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return removed;
  const UniqueFd store(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!store) throw_errno("cannot open the store '" + dir + "'");
  DIR* d = ::fdopendir(::dup(store.get()));
  if (!d) throw_errno("cannot list the store '" + dir + "'");
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (!is_partial_image_name(name)) continue;
    const UniqueFd part(::openat(store.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (!part || ::fstat(part.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    // Held: a session of a live daemon writes it. Free: its writer is gone.
    if (::flock(part.get(), LOCK_EX | LOCK_NB) != 0) continue;
    if (::unlinkat(store.get(), name.c_str(), 0) == 0) removed.push_back(name);
  }
  ::closedir(d);
  return removed;
}

}  // namespace hymig::cli
