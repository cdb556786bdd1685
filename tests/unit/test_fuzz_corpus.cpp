// The seed corpus under fuzz/corpus/ (written by hymig-fuzz-seeds from the real encoders): every
// decoder accepts its seeds, so each fuzzer starts from messages a peer really sends, and a codec
// change that breaks them shows here, not as a fuzzer that quietly explores junk.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "cli/command.hpp"
#include "cli/serve_config.hpp"
#include "core/error.hpp"
#include "fuzz/decoder_table.hpp"
#include "images/image_spec.hpp"
#include "vm/domain_policy.hpp"
#include "vm/domain_xml.hpp"

namespace fs = std::filesystem;
using namespace hymig;

namespace {

const fs::path kCorpus = HYMIG_FUZZ_CORPUS_DIR;
#ifdef HYMIG_HAVE_VERBS
constexpr std::size_t kDecoders = 25;
#else
constexpr std::size_t kDecoders = 23;  // built without rdma-core: no rc_frame_header, rc_connect
#endif

std::vector<std::pair<std::string, std::string>> seeds_of(const std::string& target) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : fs::directory_iterator(kCorpus / target)) {
    std::ifstream in(e.path(), std::ios::binary);
    out.emplace_back(e.path().filename().string(), std::string(std::istreambuf_iterator<char>(in), {}));
  }
  return out;
}

std::span<const std::byte> bytes_of(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

}  // namespace

TEST(FuzzCorpus, EveryDecoderAcceptsItsSeeds) {
  ASSERT_GE(fuzz::decoders().size(), kDecoders);
  for (const auto& d : fuzz::decoders()) {
    ASSERT_TRUE(fs::is_directory(kCorpus / d.name)) << "no seed corpus for " << d.name;
    const auto seeds = seeds_of(d.name);
    EXPECT_FALSE(seeds.empty()) << d.name;
    for (const auto& [name, body] : seeds) {
#ifndef HYMIG_HAVE_VERBS
      if (std::string_view(d.name) == "endpoint" && name == "ud") continue;  // a UD endpoint: verbs/ parses it
#endif
      try {
        d.run(bytes_of(body));
      } catch (const Error& e) {
        ADD_FAILURE() << d.name << "/" << name << " (" << d.what << ") refused its seed: " << e.what();
      }
    }
  }
}

TEST(FuzzCorpus, JunkIsRefusedNotAccepted) {
  // The table's decoders do refuse: a decoder that accepted anything would make its fuzzer moot.
  const std::string junk = "\x01\x02\x03 not a message";
  for (const auto& d : fuzz::decoders()) EXPECT_THROW(d.run(bytes_of(junk)), Error) << d.name;
}

TEST(FuzzCorpus, ImageSpecConfigAndDomainSeedsAreAccepted) {
  for (const auto& [name, text] : seeds_of("image_spec")) EXPECT_NO_THROW(parse_image_spec(text)) << name;
  for (const auto& [name, text] : seeds_of("config_file")) {
    namespace po = boost::program_options;
    po::options_description desc("options");
    cli::add_serve_options(desc);
    cli::add_key_options(desc);
    po::variables_map vm;
    std::istringstream in(text);
    cli::store_config(in, desc, vm);
    po::notify(vm);
    EXPECT_NO_THROW(cli::serve_config_from(vm)) << name;
  }
  vm::DomainPolicy policy;
  policy.allowed_paths = {"/var/lib/libvirt/images", "/dev/shm/guest.ram"};
  policy.allowed_pools = {"default"};
  for (const auto& [name, text] : seeds_of("domain_policy"))
    EXPECT_NO_THROW(vm::check_domain_policy(text, policy, {"/usr/bin/qemu-system-x86_64"})) << name;
  EXPECT_FALSE(seeds_of("datagram_receive").empty());
}
