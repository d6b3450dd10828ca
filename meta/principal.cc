#include "meta/principal.h"

namespace nighfs::meta {
namespace {

const Principal kInternal{};
thread_local const Principal* current = nullptr;

}  // namespace

const Principal& CurrentPrincipal() { return current != nullptr ? *current : kInternal; }

ScopedPrincipal::ScopedPrincipal(const Principal& principal)
    : previous_(current), principal_(principal) {
  current = &principal_;
}

ScopedPrincipal::~ScopedPrincipal() { current = previous_; }

}  // namespace nighfs::meta
