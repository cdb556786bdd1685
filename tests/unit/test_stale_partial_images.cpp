// cli/stale_partial_images.hpp: stale partial images removed when a daemon starts, the ones a live session
// holds left alone.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>

#include <filesystem>
#include <fstream>

#include "cli/stale_partial_images.hpp"
#include "core/unique_fd.hpp"

namespace fs = std::filesystem;
using namespace hymig;

TEST(StalePartialImages, PartialImageNamesAreRecognisedExactly) {
  EXPECT_TRUE(cli::is_partial_image_name(".guest.ram.00000000deadbeef.part"));
  EXPECT_TRUE(cli::is_partial_image_name(".a.0123456789abcdef.part"));
  for (const char* other : {"guest.ram", ".guest.ram", ".guest.ram.part", "..0123456789abcdef.part",
                            ".guest.0123456789ABCDEF.part", ".guest.0123456789abcde.part", "guest.0123456789abcdef.part",
                            ".guest.0123456789abcdefx.part", ".guest_0123456789abcdef.part"})
    EXPECT_FALSE(cli::is_partial_image_name(other)) << other;
}

TEST(StalePartialImages, RemovesStalePartsKeepsImagesAndPartsInUse) {
  const fs::path dir = fs::temp_directory_path() / ("hymig-stale-parts-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "guest.ram") << "image";
  std::ofstream(dir / ".guest.ram.00000000000000aa.part") << "partial, its writer gone";
  std::ofstream(dir / ".other.ram.00000000000000cc.part") << "partial, being written";
  fs::create_directory(dir / ".dir.00000000000000bb.part");  // not a regular file: left alone
  // A live session's lock, as FileTarget takes it (another daemon on the same store).
  const UniqueFd held(::open((dir / ".other.ram.00000000000000cc.part").c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(held);
  ASSERT_EQ(::flock(held.get(), LOCK_EX | LOCK_NB), 0);

  const auto removed = cli::remove_stale_partial_images(dir.string());
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], ".guest.ram.00000000000000aa.part");
  EXPECT_TRUE(fs::exists(dir / "guest.ram"));
  EXPECT_FALSE(fs::exists(dir / ".guest.ram.00000000000000aa.part"));
  EXPECT_TRUE(fs::exists(dir / ".other.ram.00000000000000cc.part"));
  EXPECT_TRUE(fs::exists(dir / ".dir.00000000000000bb.part"));
  EXPECT_TRUE(cli::remove_stale_partial_images((dir / "new" / "store").string()).empty());  // made
  EXPECT_TRUE(fs::is_directory(dir / "new" / "store"));
  fs::remove_all(dir);
}
