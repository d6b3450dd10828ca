#include "proxy/ops.h"

#include <cstdio>
#include <string_view>

namespace nighfs::proxy {

std::optional<int> RunProxyAdminCommand(int argc, char** argv) {
  if (argc < 2) return std::nullopt;
  const std::string_view cmd = argv[1];
  if (cmd != "init" && cmd != "deinit") return std::nullopt;
  std::fprintf(stderr, "nighfs-proxy %s: not implemented yet\n", argv[1]);
  return 2;
}

}  // namespace nighfs::proxy
