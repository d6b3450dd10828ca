// Debian 12's abseil has its own absl::string_view (not std::string_view): AV converts, for
// the StrCat and strings functions the proxy calls with std::string_view arguments.
#ifndef NIGHFS_PROXY_AV_H_
#define NIGHFS_PROXY_AV_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace nighfs::proxy {

inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_AV_H_
