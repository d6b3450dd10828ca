// Byte counts as people write and read them: "4M", "64KiB", "1048576" in, "4 MiB" out.
#ifndef NIGHFS_TOOLS_SIZE_H_
#define NIGHFS_TOOLS_SIZE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace nighfs::tools {

// Parses a size: decimal digits, then optionally a unit K, M, G or T (any case), which may be
// followed by "iB" or "B". Units are powers of 1024 whether or not the "i" is there: block
// sizes are always binary, and reading "4MB" as 4,000,000 would only ever be a mistake. A
// trailing lone "B" means bytes. Whitespace around the number is ignored.
// InvalidArgument for anything else, including fractions and negative numbers; OutOfRange
// if the result does not fit in 64 bits.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// "512 B", "4 MiB", "1.5 GiB": at most one decimal, dropped when it is zero.
std::string FormatBytes(uint64_t bytes);

}  // namespace nighfs::tools

#endif  // NIGHFS_TOOLS_SIZE_H_
