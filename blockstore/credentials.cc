// The credentials file: KEY=VALUE lines kept apart from the store URL so that URLs can be
// logged, shown and stored in volume configuration freely. No value read here ever reaches a
// log line or an error message; errors name the file, the line number and the key only.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "blockstore/block_store.h"
#include "common/errno_status.h"
#include "common/logging.h"

namespace nighfs::blockstore {
namespace {

// A credentials file is a handful of lines; anything much larger is the wrong file.
constexpr off_t kMaxFileSize = 64 * 1024;

struct Field {
  const char* name;
  std::string StoreCredentials::*member;
};
constexpr Field kFields[] = {
    {"AWS_ACCESS_KEY_ID", &StoreCredentials::access_key_id},
    {"AWS_SECRET_ACCESS_KEY", &StoreCredentials::secret_access_key},
    {"AWS_SESSION_TOKEN", &StoreCredentials::session_token},
    {"AZURE_STORAGE_KEY", &StoreCredentials::azure_account_key},
    {"AZURE_STORAGE_SAS_TOKEN", &StoreCredentials::azure_sas_token},
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

absl::StatusOr<std::string> ReadPrivateFile(const std::string& path) {
  // O_NOFOLLOW is not used: secret files are commonly symlinks (Kubernetes secret volumes);
  // the permission check below applies to the file the link resolves to.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return PosixError(err, absl::StrCat("credentials file '", path, "' does not exist"));
    }
    return PosixError(err, absl::StrCat("cannot open credentials file '", path,
                                        "': ", std::strerror(err)));
  }
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  // fstat on the open descriptor, not stat on the path, so the file checked is the file read.
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return PosixError(errno, absl::StrCat("cannot stat credentials file '", path, "'"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("credentials file '", path, "' is not a regular file"));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "credentials file '%s' has mode %04o: it must not be accessible by group or others "
        "(it holds secrets); fix it with: chmod 600 '%s'",
        path, st.st_mode & 07777, path));
  }
  if (st.st_size > kMaxFileSize) {
    return absl::InvalidArgumentError(absl::StrCat("credentials file '", path, "' is ",
                                                   st.st_size, " bytes; expected a few lines"));
  }
  std::string content;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError(errno, absl::StrCat("cannot read credentials file '", path, "'"));
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
    if (content.size() > static_cast<size_t>(kMaxFileSize)) {
      return absl::InvalidArgumentError(
          absl::StrCat("credentials file '", path, "' is too large; expected a few lines"));
    }
  }
  return content;
}

absl::Status ParseCredentials(const std::string& path, std::string_view content,
                              StoreCredentials* out) {
  int line_number = 0;
  while (!content.empty()) {
    ++line_number;
    const size_t nl = content.find('\n');
    std::string_view line = Trim(content.substr(0, nl));
    content = nl == std::string_view::npos ? std::string_view() : content.substr(nl + 1);
    // '#' starts a comment only at the beginning of a line: a secret may contain '#'.
    if (line.empty() || line.front() == '#') continue;
    if (absl::StartsWith(absl::string_view(line.data(), line.size()), "export ")) {
      line = Trim(line.substr(7));  // shell-style env files
    }
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "credentials file '", path, "' line ", line_number, ": expected KEY=VALUE"));
    }
    const std::string key(Trim(line.substr(0, eq)));
    std::string_view value = Trim(line.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    bool known = false;
    for (const Field& f : kFields) {
      if (key == f.name) {
        out->*f.member = std::string(value);
        known = true;
      }
    }
    if (!known) {
      // Likely a typo (AWS_SECRET_KEY); the key name is not secret, its value may be.
      NIGHFS_LOG(WARNING) << "credentials file '" << path << "' line " << line_number
                          << ": unknown key '" << key << "' ignored";
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StoreCredentials> LoadCredentials(const std::string& path) {
  StoreCredentials creds;
  if (!path.empty()) {
    absl::StatusOr<std::string> content = ReadPrivateFile(path);
    if (!content.ok()) return content.status();
    if (absl::Status s = ParseCredentials(path, *content, &creds); !s.ok()) return s;
  }
  for (const Field& f : kFields) {
    std::string& field = creds.*f.member;
    if (!field.empty()) continue;
    if (const char* env = std::getenv(f.name); env != nullptr) field = env;
  }
  return creds;
}

}  // namespace nighfs::blockstore
