#include "tools/size.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"
#include "tests/testing/test_status.h"

namespace nighfs::tools {
namespace {

TEST(ParseSizeTest, AcceptsBytesAndBinaryUnits) {
  struct Case {
    const char* text;
    uint64_t want;
  };
  const Case cases[] = {
      {"1048576", 1048576},   {"0", 0},           {"4096B", 4096},        {"4096b", 4096},
      {"64K", 64 << 10},      {"64k", 64 << 10},  {"64KiB", 64 << 10},    {"64KB", 64 << 10},
      {"4M", 4 << 20},        {"4m", 4 << 20},    {"4MiB", 4 << 20},      {"4mib", 4 << 20},
      {"4MB", 4 << 20},       {" 8M ", 8 << 20},  {"1G", 1ull << 30},     {"2GiB", 2ull << 30},
      {"3T", 3ull << 40},     {"16777215T", 16777215ull << 40},
      {"18446744073709551615", std::numeric_limits<uint64_t>::max()},
  };
  for (const Case& c : cases) {
    absl::StatusOr<uint64_t> got = ParseSize(c.text);
    ASSERT_TRUE(got.ok()) << "for '" << c.text << "': " << got.status();
    EXPECT_EQ(*got, c.want) << "for '" << c.text << "'";
  }
}

TEST(ParseSizeTest, RejectsMalformedSizes) {
  for (const char* text : {"", " ", "M", "MiB", "4X", "4.5M", "-1", "+4M", "4 M", "4MiBs", "4Mi",
                           "4KK", "0x10", "4M4", "four"}) {
    EXPECT_THAT(ParseSize(text), StatusIs(absl::StatusCode::kInvalidArgument))
        << "for '" << text << "'";
  }
}

TEST(ParseSizeTest, MessageNamesTheInputAndShowsExamples) {
  absl::StatusOr<uint64_t> got = ParseSize("4X");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("'4X'"), absl::string_view::npos) << got.status();
  EXPECT_NE(got.status().message().find("4M"), absl::string_view::npos) << got.status();
}

TEST(ParseSizeTest, RejectsOverflow) {
  EXPECT_THAT(ParseSize("18446744073709551616"), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(ParseSize("99999999999999999999999"), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(ParseSize("16777216T"), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(ParseSize("17179869184G"), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(FormatBytesTest, UsesBinaryUnitsWithAtMostOneDecimal) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1), "1 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(64 << 10), "64 KiB");
  EXPECT_EQ(FormatBytes(4 << 20), "4 MiB");
  EXPECT_EQ(FormatBytes((4 << 20) + (1 << 19)), "4.5 MiB");
  EXPECT_EQ(FormatBytes(5ull << 30), "5 GiB");
  EXPECT_EQ(FormatBytes(3ull << 40), "3 TiB");
  EXPECT_EQ(FormatBytes(std::numeric_limits<uint64_t>::max()), "16 EiB");
}

TEST(FormatBytesTest, RoundsUpIntoTheNextUnit) {
  // 1023.96 KiB rounds to 1024.0 KiB, which must read as the next unit.
  EXPECT_EQ(FormatBytes((1 << 20) - 40), "1 MiB");
  EXPECT_EQ(FormatBytes((1ull << 30) - 1), "1 GiB");
}

TEST(FormatBytesTest, RoundTripsThroughParseSizeForWholeUnits) {
  for (uint64_t v : {uint64_t{1} << 10, uint64_t{4} << 20, uint64_t{7} << 30}) {
    std::string text = FormatBytes(v);
    text.erase(text.find(' '), 1);  // "4 MiB" -> "4MiB"
    absl::StatusOr<uint64_t> back = ParseSize(text);
    ASSERT_OK(back);
    EXPECT_EQ(*back, v);
  }
}

}  // namespace
}  // namespace nighfs::tools
