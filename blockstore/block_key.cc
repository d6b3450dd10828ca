#include "absl/strings/str_format.h"
#include "blockstore/block_store.h"

namespace nighfs::blockstore {

std::string BlockKey(uint64_t id) {
  return absl::StrFormat("blk/%02x/%016x", id & 0xff, id);
}

}  // namespace nighfs::blockstore
