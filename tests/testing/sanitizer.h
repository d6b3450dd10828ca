// Whether this build runs under a sanitizer (scripts/sanitize.sh): tests that measure speed or
// memory (RSS bounds, bandwidth caps) skip their figures there, since TSan and ASan multiply
// both, while their logic still runs.
#ifndef NIGHFS_TESTS_TESTING_SANITIZER_H_
#define NIGHFS_TESTS_TESTING_SANITIZER_H_

namespace nighfs::testing {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kUnderSanitizer = true;
#else
inline constexpr bool kUnderSanitizer = false;
#endif

}  // namespace nighfs::testing

#endif  // NIGHFS_TESTS_TESTING_SANITIZER_H_
