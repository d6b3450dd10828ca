#include "common/logging.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nighfs {
namespace {

LogLevel InitialLevel() {
  LogLevel l = LogLevel::INFO;
  if (const char* env = std::getenv("NIGHFS_LOG_LEVEL")) ParseLogLevel(env, &l);
  return l;
}

std::atomic<int>& Threshold() {
  static std::atomic<int> t{static_cast<int>(InitialLevel())};
  return t;
}

}  // namespace

void SetLogLevel(LogLevel level) { Threshold().store(static_cast<int>(level)); }

bool ParseLogLevel(std::string_view s, LogLevel* out) {
  std::string l = absl::AsciiStrToLower(std::string(s));
  if (l == "debug") *out = LogLevel::DEBUG;
  else if (l == "info") *out = LogLevel::INFO;
  else if (l == "warning" || l == "warn") *out = LogLevel::WARNING;
  else if (l == "error") *out = LogLevel::ERROR;
  else return false;
  return true;
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= Threshold().load(); }

LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  static const char kLetters[] = {'D', 'I', 'W', 'E'};
  const char* base = std::strrchr(file, '/');
  stream_ << kLetters[static_cast<int>(level)]
          << absl::FormatTime("%m%d %H:%M:%E3S", absl::Now(), absl::LocalTimeZone()) << ' '
          << (base ? base + 1 : file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  std::string s = stream_.str();
  // One write(2) so lines from several threads never interleave.
  ssize_t unused = ::write(STDERR_FILENO, s.data(), s.size());
  (void)unused;
}

}  // namespace nighfs
