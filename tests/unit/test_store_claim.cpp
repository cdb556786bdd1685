// cli/store_claim.hpp: one daemon per store, and stale partial images removed at start.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli/store_claim.hpp"
#include "transport/error.hpp"

namespace fs = std::filesystem;
using namespace hymig;

TEST(StoreClaim, PartialImageNamesAreRecognisedExactly) {
  EXPECT_TRUE(cli::is_partial_image_name(".guest.ram.00000000deadbeef.part"));
  EXPECT_TRUE(cli::is_partial_image_name(".a.0123456789abcdef.part"));
  for (const char* other : {"guest.ram", ".guest.ram", ".guest.ram.part", "..0123456789abcdef.part",
                            ".guest.0123456789ABCDEF.part", ".guest.0123456789abcde.part", "guest.0123456789abcdef.part",
                            ".guest.0123456789abcdefx.part", ".guest_0123456789abcdef.part"})
    EXPECT_FALSE(cli::is_partial_image_name(other)) << other;
}

TEST(StoreClaim, RemovesStalePartsKeepsImagesAndRefusesASecondDaemon) {
  const fs::path dir = fs::temp_directory_path() / ("hymig-store-claim-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "guest.ram") << "image";
  std::ofstream(dir / ".guest.ram.00000000000000aa.part") << "partial";
  fs::create_directory(dir / ".dir.00000000000000bb.part");  // not a regular file: left alone
  {
    const cli::StoreClaim first = cli::claim_store(dir.string());
    ASSERT_TRUE(first.lock);
    ASSERT_EQ(first.removed.size(), 1u);
    EXPECT_EQ(first.removed[0], ".guest.ram.00000000000000aa.part");
    EXPECT_TRUE(fs::exists(dir / "guest.ram"));
    EXPECT_FALSE(fs::exists(dir / ".guest.ram.00000000000000aa.part"));
    EXPECT_TRUE(fs::exists(dir / ".dir.00000000000000bb.part"));
    try {
      cli::claim_store(dir.string());
      ADD_FAILURE() << "a second claim on a held store succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage);
      EXPECT_NE(std::string(e.what()).find("in use by another hymig serve"), std::string::npos);
    }
  }
  EXPECT_TRUE(cli::claim_store(dir.string()).lock);  // released with the first
  const cli::StoreClaim made = cli::claim_store((dir / "new" / "store").string());
  EXPECT_TRUE(made.lock);
  fs::remove_all(dir);
}
