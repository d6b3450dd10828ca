#include "common/crc32c.h"

#include <cstdint>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace nighfs {
namespace {

// RFC 3720 (iSCSI), appendix B.4.
TEST(Crc32cTest, Rfc3720Vectors) {
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(descending), 0x113FDB5Cu);
}

TEST(Crc32cTest, CheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32cExtend(0, nullptr, 0), 0u);
}

TEST(Crc32cTest, ExtendInPiecesEqualsWhole) {
  std::mt19937 rng(42);
  std::string data(10007, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  const uint32_t whole = Crc32c(data);
  // Split points that leave unaligned heads and tails of every length below 8, so both the
  // 8-byte and the byte-at-a-time loops are exercised.
  for (size_t step : {1u, 3u, 7u, 8u, 9u, 64u, 1000u, 4096u}) {
    uint32_t crc = 0;
    for (size_t off = 0; off < data.size(); off += step) {
      const size_t n = std::min(step, data.size() - off);
      crc = Crc32cExtend(crc, data.data() + off, n);
    }
    EXPECT_EQ(crc, whole) << "step " << step;
  }
  // Extending by nothing changes nothing.
  EXPECT_EQ(Crc32cExtend(whole, data.data(), 0), whole);
}

TEST(Crc32cTest, DetectsSingleBitFlip) {
  std::string data(4096, 'a');
  const uint32_t before = Crc32c(data);
  data[2000] ^= 0x10;
  EXPECT_NE(Crc32c(data), before);
}

}  // namespace
}  // namespace nighfs
