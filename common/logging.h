// Minimal leveled logging to stderr (Debian 12's abseil has no absl/log).
// NIGHFS_LOG(INFO) << "x"; levels: DEBUG, INFO, WARNING, ERROR. The threshold comes from
// SetLogLevel() or the NIGHFS_LOG_LEVEL environment variable (debug|info|warning|error).
#ifndef NIGHFS_COMMON_LOGGING_H_
#define NIGHFS_COMMON_LOGGING_H_

#include <sstream>
#include <string_view>

namespace nighfs {

enum class LogLevel { DEBUG = 0, INFO = 1, WARNING = 2, ERROR = 3 };

void SetLogLevel(LogLevel level);
bool ParseLogLevel(std::string_view s, LogLevel* out);
bool LogEnabled(LogLevel level);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();  // writes one line atomically
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace nighfs

// A for-loop rather than if/else, so the macro nests in an unbraced if without warnings.
#define NIGHFS_LOG(level)                                                              \
  for (bool nighfs_log_once_ = ::nighfs::LogEnabled(::nighfs::LogLevel::level);        \
       nighfs_log_once_; nighfs_log_once_ = false)                                     \
  ::nighfs::LogMessage(::nighfs::LogLevel::level, __FILE__, __LINE__).stream()

#endif  // NIGHFS_COMMON_LOGGING_H_
