// Sets (value nullptr: unsets) an environment variable for a scope and restores what was there
// before when the scope ends. Tests only: setenv is not thread-safe, so use it where no other
// thread reads the environment.
#ifndef NIGHFS_TESTS_TESTING_SCOPED_ENV_H_
#define NIGHFS_TESTS_TESTING_SCOPED_ENV_H_

#include <cstdlib>
#include <optional>
#include <string>

namespace nighfs::testing {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value == nullptr) {
      ::unsetenv(name);
    } else {
      ::setenv(name, value, 1);
    }
  }
  ScopedEnv(const char* name, const std::string& value) : ScopedEnv(name, value.c_str()) {}
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const std::string name_;
  std::optional<std::string> old_;
};

}  // namespace nighfs::testing

#endif  // NIGHFS_TESTS_TESTING_SCOPED_ENV_H_
