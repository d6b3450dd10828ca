#include "mount/group_cache.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"

namespace nighfs::fs {

std::vector<uint32_t> ParseStatusGroups(std::string_view status) {
  std::vector<uint32_t> groups;
  constexpr std::string_view kKey = "Groups:";
  size_t at = status.substr(0, kKey.size()) == kKey ? 0 : status.find("\nGroups:");
  if (at == std::string_view::npos) return groups;
  if (at != 0) ++at;  // past the newline
  std::string_view line = status.substr(at + kKey.size());
  line = line.substr(0, line.find('\n'));
  while (!line.empty() && groups.size() < static_cast<size_t>(kMaxCallerGroups)) {
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    line.remove_prefix(start);
    const size_t end = std::min(line.find_first_of(" \t"), line.size());
    uint32_t g = 0;
    if (absl::SimpleAtoi(absl::string_view(line.data(), end), &g)) groups.push_back(g);
    line.remove_prefix(end);
  }
  return groups;
}

std::vector<uint32_t> ReadProcessGroups(pid_t pid) {
  const std::string p = std::to_string(pid);
  std::ifstream f("/proc/" + p + "/task/" + p + "/status");
  if (!f) return {};
  std::ostringstream text;
  text << f.rdbuf();
  return ParseStatusGroups(text.str());
}

}  // namespace nighfs::fs
