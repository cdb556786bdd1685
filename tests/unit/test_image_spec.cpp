// images/image_spec.hpp: --image specs parsed without opening anything, and refused as usage
// errors where they would be dangerous.
#include <gtest/gtest.h>

#include <variant>

#include "core/error.hpp"
#include "images/image_spec.hpp"

using namespace hymig;

TEST(ImageSpec, ParsesWithoutOpeningAndRefusesWhatCouldSignalAGroup) {
  const ImageSpec s = parse_image_spec("synthetic:size=2G,writers=200");
  ASSERT_TRUE(std::holds_alternative<SyntheticSpec>(s));
  EXPECT_EQ(std::get<SyntheticSpec>(s).size, 2ull << 30);
  EXPECT_EQ(std::get<SyntheticSpec>(s).writers, 64u);  // capped
  const ImageSpec f = parse_image_spec("file:/nonexistent/x.ram,pause-pid=42");  // nothing is opened
  EXPECT_EQ(std::get<FileImageSpec>(f).pause_pid, 42);
  // kill(0, ...) signals the caller's process group and kill(-1, ...) every process it may: a
  // pause-pid of 0 or one that wraps to a negative pid_t is refused as usage, never used.
  for (const char* bad : {"file:/x,pause-pid=0", "file:/x,pause-pid=4294967295", "file:/x,pause-pid=2147483648",
                          "file:/x,pause-pid=-1", "file:", "synthetic:size=", "synthetic:zero-fraction=nan", "qcow:/x"}) {
    try {
      parse_image_spec(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage) << bad;
    }
  }
}
