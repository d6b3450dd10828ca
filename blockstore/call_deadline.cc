#include "blockstore/call_deadline.h"

#include <algorithm>

namespace nighfs::blockstore {
namespace {

thread_local absl::Time current_deadline = absl::InfiniteFuture();

}  // namespace

absl::Time CallDeadline() { return current_deadline; }

ScopedCallDeadline::ScopedCallDeadline(absl::Time deadline) : outer_(current_deadline) {
  current_deadline = std::min(outer_, deadline);
}

ScopedCallDeadline::~ScopedCallDeadline() { current_deadline = outer_; }

}  // namespace nighfs::blockstore
