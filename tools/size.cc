#include "tools/size.h"

#include <cctype>
#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nighfs::tools {

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  const std::string original(text);
  std::string s = absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())));
  auto invalid = [&original]() {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid size '", original, "': expected a number of bytes, optionally with K, M, G or T ",
        "(e.g. 4M, 64KiB, 1048576)"));
  };
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0) return invalid();

  uint64_t value = 0;
  for (size_t i = 0; i < digits; ++i) {
    const uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - d) / 10) {
      return absl::OutOfRangeError(absl::StrCat("size '", original, "' is too large"));
    }
    value = value * 10 + d;
  }

  std::string unit = s.substr(digits);
  int shift = 0;
  if (unit.empty() || unit == "b") {
    shift = 0;
  } else {
    switch (unit[0]) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      default: return invalid();
    }
    const std::string rest = unit.substr(1);
    if (!rest.empty() && rest != "b" && rest != "ib") return invalid();
  }
  if (shift > 0 && value > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return absl::OutOfRangeError(absl::StrCat("size '", original, "' is too large"));
  }
  return value << shift;
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  int unit = 0;
  double value = static_cast<double>(bytes);
  while (value >= 1024.0 && unit < 6) {
    value /= 1024.0;
    ++unit;
  }
  // Round to one decimal first, so 1023.96 KiB reads "1 MiB" rather than "1024 KiB".
  double rounded = std::round(value * 10.0) / 10.0;
  if (rounded >= 1024.0 && unit < 6) {
    rounded /= 1024.0;
    ++unit;
  }
  if (rounded == std::floor(rounded)) {
    return absl::StrFormat("%.0f %s", rounded, kUnits[unit]);
  }
  return absl::StrFormat("%.1f %s", rounded, kUnits[unit]);
}

}  // namespace nighfs::tools
