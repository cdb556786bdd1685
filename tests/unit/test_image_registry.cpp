// images/image_registry.hpp and runtime/image_schemes.hpp: the --image schemes, each added once by
// its module, looked up by the text before the first ':'; check opens nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

#include "core/error.hpp"
#include "images/image_registry.hpp"
#include "runtime/image_schemes.hpp"

using namespace hymig;

namespace {

struct Calls {
  int check = 0;
  int open = 0;
  std::string rest;
};

ImageScheme counting(const std::string& name, const std::string& help, Calls& calls) {
  return {name, help,
          [&calls](const std::string& rest) {
            ++calls.check;
            calls.rest = rest;
            if (rest == "bad") throw Error(ErrorKind::usage, "--image: bad");
          },
          [&calls](const std::string&) -> std::unique_ptr<SourceImage> {
            ++calls.open;
            return nullptr;
          }};
}

std::string usage_message(const ImageRegistry& r, const std::string& spec) {
  try {
    r.check(spec);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage) << spec;
    return e.what();
  }
  ADD_FAILURE() << spec << " was accepted";
  return {};
}

}  // namespace

TEST(ImageRegistry, RefusesADuplicateOrMalformedScheme) {
  Calls a, b;
  ImageRegistry r;
  r.add(counting("alpha", "A\n", a));
  EXPECT_THROW(r.add(counting("alpha", "again\n", b)), std::logic_error);
  EXPECT_THROW(r.add(counting("", "empty\n", b)), std::logic_error);
  EXPECT_THROW(r.add(counting("x:y", "colon\n", b)), std::logic_error);
  EXPECT_THROW(r.add(ImageScheme{"noop", "no functions\n", {}, {}}), std::logic_error);
  EXPECT_EQ(r.names(), std::vector<std::string>{"alpha"});
  EXPECT_EQ(r.help(), "A\n");  // the refused ones left nothing behind
}

TEST(ImageRegistry, UnknownSchemeIsUsageListingTheKnownOnes) {
  Calls a, b;
  ImageRegistry r;
  EXPECT_NE(usage_message(r, "alpha:x").find("no image scheme is registered"), std::string::npos);
  r.add(counting("alpha", "A\n", a));
  r.add(counting("beta", "B\n", b));
  const std::string msg = usage_message(r, "floppy:/dev/fd0");
  EXPECT_NE(msg.find("--image: unknown image kind 'floppy' in 'floppy:/dev/fd0'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected alpha:... or beta:..."), std::string::npos) << msg;
  // The spec comes from the command line: echoed printable, and cut.
  const std::string hostile = usage_message(r, "\x1b]0;x\x07:" + std::string(1000, 'z'));
  EXPECT_EQ(hostile.find('\x1b'), std::string::npos) << hostile;
  EXPECT_LT(hostile.size(), 600u) << hostile;
  // The product's table: every scheme it opens.
  const std::string product = usage_message(runtime::image_schemes(), "qcow:/x");
  EXPECT_NE(product.find("expected synthetic:..., file:... or qmp:..."), std::string::npos) << product;
  EXPECT_EQ(a.check + a.open + b.check + b.open, 0);
}

TEST(ImageRegistry, HelpConcatenatesInRegistrationOrder) {
  Calls a, b;
  ImageRegistry r;
  r.add(counting("zeta", "  zeta:...\n", a));
  r.add(counting("alpha", "  alpha:...\n", b));
  EXPECT_EQ(r.help(), "  zeta:...\n  alpha:...\n");
  EXPECT_EQ(r.names(), (std::vector<std::string>{"zeta", "alpha"}));

  const std::string help = runtime::image_schemes().help();
  const auto synthetic = help.find("  synthetic:size=S");
  const auto file = help.find("  file:PATH");
  const auto qmp = help.find("  qmp:PATH");
  ASSERT_NE(synthetic, std::string::npos) << help;
  ASSERT_NE(file, std::string::npos) << help;
  ASSERT_NE(qmp, std::string::npos) << help;
  EXPECT_LT(synthetic, file);
  EXPECT_LT(file, qmp);
  EXPECT_EQ(runtime::image_schemes().names(), (std::vector<std::string>{"synthetic", "file", "qmp"}));
}

TEST(ImageRegistry, CheckOpensNothingAndOpenChecksFirst) {
  Calls a;
  ImageRegistry r;
  r.add(counting("alpha", "A\n", a));
  r.check("alpha:one,two");
  EXPECT_EQ(a.check, 1);
  EXPECT_EQ(a.open, 0);
  EXPECT_EQ(a.rest, "one,two");
  r.check("alpha");  // no colon: the rest is empty
  EXPECT_EQ(a.rest, "");
  EXPECT_THROW(r.open("alpha:bad"), Error);
  EXPECT_EQ(a.open, 0);  // refused by check, never opened
  EXPECT_EQ(r.open("alpha:good"), nullptr);
  EXPECT_EQ(a.check, 4);
  EXPECT_EQ(a.open, 1);

  // The product's schemes: a file or a QMP socket that is not there passes check (nothing is opened
  // or attached), and a huge synthetic image is not allocated.
  const ImageRegistry& product = runtime::image_schemes();
  const std::string absent = "/nonexistent/hymig-registry-test";
  ASSERT_FALSE(std::filesystem::exists(absent));
  EXPECT_NO_THROW(product.check("file:" + absent + "/x.ram,pause-pid=42"));
  EXPECT_NO_THROW(product.check("qmp:" + absent + "/guest.qmp"));
  EXPECT_NO_THROW(product.check("synthetic:size=64T"));
  EXPECT_NO_THROW(product.check("synthetic"));
  for (const char* bad : {"file:", "qmp:", "synthetic:size=", "file:/x,pause-pid=0"}) {
    try {
      product.check(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage) << bad;
    }
  }
  EXPECT_THROW(product.open("file:" + absent + "/x.ram"), Error);
}
