#include "cli/store_claim.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <filesystem>

#include "transport/error.hpp"

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

StoreClaim claim_store(const std::string& dir) {
  StoreClaim c;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return c;
  c.lock = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!c.lock) throw_errno("cannot open the store '" + dir + "'");
  if (::flock(c.lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      throw Error(ErrorKind::usage, "the store '" + dir + "' is in use by another hymig serve: give each daemon its own --store");
    throw_errno("cannot lock the store '" + dir + "'");
  }
  DIR* d = ::fdopendir(::dup(c.lock.get()));
  if (!d) throw_errno("cannot list the store '" + dir + "'");
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    struct stat st {};
    if (!is_partial_image_name(name) || ::fstatat(c.lock.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      continue;
    if (::unlinkat(c.lock.get(), name.c_str(), 0) == 0) c.removed.push_back(name);
  }
  ::closedir(d);
  return c;
}

}  // namespace hymig::cli
