// nighfs-proxy's administration subcommands: the credentials file the daemon reads and the
// systemd unit that runs it, with the flexFS-style `init`/`deinit` verbs operators expect.
// Nothing here ever prints or logs a secret: messages name files and keys, never values.
#include "proxy/ops.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <iterator>  // std::size
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "blockstore/block_store.h"
#include "common/errno_status.h"
#include "common/scoped_fd.h"
#include "common/status_macros.h"

extern char** environ;

namespace nighfs::proxy {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // the operation failed or was refused
constexpr int kExitUsage = 2;    // the command line is wrong

constexpr char kDefaultCredsFile[] = "/etc/nighfs/proxy.creds";
constexpr char kDefaultUnitDir[] = "/etc/systemd/system";
constexpr char kUnitName[] = "nighfs-proxy.service";

// ---------------------------------------------------------------------------------------------
// Files

absl::Status Errno(int err, absl::string_view what, const std::string& path) {
  return PosixError(err, absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

absl::Status FsyncDir(const std::string& dir) {
  ScopedFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return Errno(errno, "cannot open folder", dir);
  if (::fsync(fd.get()) != 0) return Errno(errno, "cannot fsync folder", dir);
  return absl::OkStatus();
}

// Writes `content` to `path` with exactly `mode` (whatever the umask): into a temporary file of
// the same folder, fsync'd, then moved into place, so a reader (the daemon, systemd) never sees
// half a file or a secret file with a wider mode. Without `replace`, an existing `path` is never
// touched (AlreadyExists): link(2) fails atomically where a check-then-rename could race.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view content, mode_t mode,
                                 bool replace) {
  const std::filesystem::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return PosixError(ec.value(), absl::StrCat("cannot create folder ", dir, ": ", ec.message()));
  }
  std::string tmp = absl::StrCat(dir, "/.", p.filename().string(), ".tmp.XXXXXX");
  // mkstemp creates the file 0600: a secret is never readable by others, not even briefly.
  ScopedFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (fd.get() < 0) return Errno(errno, "cannot create a temporary file in", dir);
  bool keep_tmp = false;
  absl::Status status = [&]() -> absl::Status {
    if (::fchmod(fd.get(), mode) != 0) return Errno(errno, "cannot chmod", tmp);
    while (!content.empty()) {
      const ssize_t n = ::write(fd.get(), content.data(), content.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno(errno, "cannot write", tmp);
      }
      content.remove_prefix(static_cast<size_t>(n));
    }
    if (::fsync(fd.get()) != 0) return Errno(errno, "cannot fsync", tmp);
    if (fd.Close() != 0) return Errno(errno, "cannot close", tmp);
    if (replace) {
      if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno(errno, "cannot rename to", path);
      keep_tmp = true;  // it is `path` now
    } else if (::link(tmp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      if (err == EEXIST) {
        return absl::AlreadyExistsError(absl::StrCat(path, " exists; pass --force to replace it"));
      }
      return Errno(err, "cannot create", path);
    }
    return FsyncDir(dir);
  }();
  if (!keep_tmp) ::unlink(tmp.c_str());
  return status;
}

// The whole content of `path` ("-": standard input), at most `limit` bytes.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t limit) {
  const bool stdin_path = path == "-";
  const int raw = stdin_path ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) return Errno(errno, "cannot open", path);
  ScopedFd owned(stdin_path ? -1 : raw);
  std::string text;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(raw, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(errno, "cannot read", stdin_path ? std::string("standard input") : path);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > limit) {
      return absl::InvalidArgumentError(
          absl::StrCat(stdin_path ? std::string("standard input") : path, " is over ", limit,
                       " bytes: too large"));
    }
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// init creds / deinit creds

// The flags naming a file that holds one secret. Secrets are never taken as flag values:
// argv is visible to every user of the host (ps, /proc/PID/cmdline).
struct SecretFileFlag {
  const char* flag;
  const char* help;
  std::string blockstore::StoreCredentials::*field;
};
constexpr SecretFileFlag kSecretFileFlags[] = {
    {"--secret-access-key-file",
     "file holding the secret access key ('-': standard input); a secret is never taken on the "
     "command line, where ps shows it",
     &blockstore::StoreCredentials::secret_access_key},
    {"--session-token-file", "file holding an S3 session token (temporary credentials)",
     &blockstore::StoreCredentials::session_token},
    {"--azure-storage-key-file", "file holding an Azure storage account key",
     &blockstore::StoreCredentials::azure_account_key},
    {"--azure-sas-token-file", "file holding an Azure SAS token (without '?')",
     &blockstore::StoreCredentials::azure_sas_token},
};

struct CredsArgs {
  std::string creds_file = kDefaultCredsFile;
  std::string access_key_id;
  std::string secret_files[std::size(kSecretFileFlags)];  // paths, "" = not given
  bool force = false;
};

// A value for one key of the file. Secrets may hold any printable character ('#', '=', quotes,
// spaces); a control character (a newline above all) would cut the KEY=VALUE line, so it is
// refused, naming the key and never the value.
absl::Status CheckValue(absl::string_view key, absl::string_view value) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(key, " is empty"));
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, " contains a control character (a newline?); not written"));
    }
  }
  return absl::OkStatus();
}

// One line LoadCredentials reads back as exactly `value`. It trims the value and strips one pair
// of matching outer quotes without unescaping anything, so wrapping in single quotes preserves
// any value; plain values stay unquoted to keep the file readable.
std::string CredentialLine(absl::string_view key, absl::string_view value) {
  const bool edge_space = absl::ascii_isspace(static_cast<unsigned char>(value.front())) ||
                          absl::ascii_isspace(static_cast<unsigned char>(value.back()));
  const bool looks_quoted = value.size() >= 2 && value.front() == value.back() &&
                            (value.front() == '"' || value.front() == '\'');
  if (edge_space || looks_quoted) return absl::StrCat(key, "='", value, "'\n");
  return absl::StrCat(key, "=", value, "\n");
}

// The secret held in a file (or standard input), without the newline an editor or `echo` adds.
absl::StatusOr<std::string> ReadSecretFile(absl::string_view flag, const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, 64 * 1024);
  if (!text.ok())
    return absl::Status(text.status().code(), absl::StrCat(flag, ": ", text.status().message()));
  std::string secret(absl::StripAsciiWhitespace(*text));
  if (secret.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", path == "-" ? "standard input" : path, " holds no secret"));
  }
  return secret;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

int InitCreds(const CredsArgs& a, bool any_flag) {
  blockstore::StoreCredentials c;
  const char* source;
  if (any_flag) {
    // The command line alone: a half taken from flags and half from a stray environment
    // variable (another account's secret) would make a pair that never works.
    source = "the command line";
    c.access_key_id = a.access_key_id;
    for (size_t i = 0; i < std::size(kSecretFileFlags); ++i) {
      if (a.secret_files[i].empty()) continue;
      absl::StatusOr<std::string> secret =
          ReadSecretFile(kSecretFileFlags[i].flag, a.secret_files[i]);
      if (!secret.ok()) {
        std::cerr << "nighfs-proxy init creds: " << secret.status().message() << "\n";
        return kExitFailure;
      }
      c.*kSecretFileFlags[i].field = *std::move(secret);
    }
  } else {
    source = "the environment";
    c.access_key_id = Env("AWS_ACCESS_KEY_ID");
    c.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
    c.session_token = Env("AWS_SESSION_TOKEN");
    c.azure_account_key = Env("AZURE_STORAGE_KEY");
    c.azure_sas_token = Env("AZURE_STORAGE_SAS_TOKEN");
  }

  auto usage = [](absl::string_view message) {
    std::cerr << "nighfs-proxy init creds: " << message << "\n";
    return kExitUsage;
  };
  if (c.access_key_id.empty() != c.secret_access_key.empty()) {
    return usage(
        absl::StrCat("an access key id and its secret go together (from ", source,
                     ": --access-key-id with --secret-access-key-file, or AWS_ACCESS_KEY_ID with "
                     "AWS_SECRET_ACCESS_KEY)"));
  }
  if (!c.session_token.empty() && c.access_key_id.empty()) {
    return usage("a session token needs an access key id and secret");
  }
  if (c.access_key_id.empty() && c.azure_account_key.empty() && c.azure_sas_token.empty()) {
    return usage(absl::StrCat(
        "no credentials in ", source,
        ": pass --access-key-id ID --secret-access-key-file FILE (S3, GCS HMAC, OCI), "
        "--azure-storage-key-file FILE or --azure-sas-token-file FILE, or set "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN], AZURE_STORAGE_KEY or "
        "AZURE_STORAGE_SAS_TOKEN"));
  }

  const struct {
    const char* key;
    const std::string& value;
  } fields[] = {
      {"AWS_ACCESS_KEY_ID", c.access_key_id},
      {"AWS_SECRET_ACCESS_KEY", c.secret_access_key},
      {"AWS_SESSION_TOKEN", c.session_token},
      {"AZURE_STORAGE_KEY", c.azure_account_key},
      {"AZURE_STORAGE_SAS_TOKEN", c.azure_sas_token},
  };
  std::string content =
      "# Object store credentials of nighfs-proxy (--creds-file), written by "
      "`nighfs-proxy init creds`.\n"
      "# Keep it mode 0600: nighfs refuses to read it when group or others may.\n";
  std::vector<std::string> written;
  for (const auto& f : fields) {
    if (f.value.empty()) continue;
    if (absl::Status s = CheckValue(f.key, f.value); !s.ok()) {
      std::cerr << "nighfs-proxy init creds: " << s.message() << "\n";
      return kExitUsage;
    }
    content += CredentialLine(f.key, f.value);
    written.push_back(f.key);
  }
  if (absl::Status s = WriteFileAtomically(a.creds_file, content, 0600, a.force); !s.ok()) {
    std::cerr << "nighfs-proxy init creds: " << s.message() << "\n";
    return kExitFailure;
  }
  std::cout << "wrote " << absl::StrJoin(written, ", ") << " (from " << source << ") to "
            << a.creds_file << " (mode 0600)\n";
  if (a.creds_file != kDefaultCredsFile) {
    std::cout << "start the proxy with --creds-file " << a.creds_file << "\n";
  }
  return kExitOk;
}

int DeinitCreds(const std::string& creds_file) {
  if (::unlink(creds_file.c_str()) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      std::cout << "no credentials file at " << creds_file << ": nothing to remove\n";
      return kExitOk;
    }
    std::cerr << "nighfs-proxy deinit creds: cannot remove " << creds_file << ": "
              << std::strerror(err) << "\n";
    return kExitFailure;
  }
  std::cout << "removed " << creds_file << "\n";
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// init systemd / deinit systemd

struct SystemdArgs {
  std::string start_flags;
  std::string unit_dir = kDefaultUnitDir;
  std::string binary;
  bool now = false;
  bool force = false;
};

// Splits --start-flags the way a POSIX shell splits words (no expansion): whitespace separates,
// '...' is literal, "..." allows \" \\ \$ \` escapes, a backslash outside quotes escapes the
// next character. So `--start-flags "--disk-folder '/data/my cache'"` gives two words.
absl::StatusOr<std::vector<std::string>> SplitShellWords(absl::string_view s) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      const size_t end = s.find('\'', i + 1);
      if (end == absl::string_view::npos) {
        return absl::InvalidArgumentError("unterminated ' quote");
      }
      word.append(s.data() + i + 1, end - i - 1);
      i = end;
    } else if (c == '"') {
      size_t j = i + 1;
      for (; j < s.size() && s[j] != '"'; ++j) {
        if (s[j] == '\\' && j + 1 < s.size() &&
            absl::string_view("\"\\$`").find(s[j + 1]) != absl::string_view::npos) {
          ++j;
        }
        word.push_back(s[j]);
      }
      if (j >= s.size()) return absl::InvalidArgumentError("unterminated \" quote");
      i = j;
    } else if (c == '\\') {
      if (i + 1 >= s.size()) return absl::InvalidArgumentError("a trailing backslash");
      word.push_back(s[++i]);
    } else {
      word.push_back(c);
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

// One ExecStart= word that systemd turns back into exactly `word`. Words of plain characters
// go as they are; any other is double-quoted with C escapes. Either way '%' (a unit specifier)
// becomes "%%" and '$' (environment expansion) becomes "$$".
std::string SystemdWord(absl::string_view word) {
  bool plain = !word.empty();
  for (const char c : word) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        absl::string_view("-_./:=,+@%$").find(c) == absl::string_view::npos) {
      plain = false;
    }
  }
  std::string out;
  if (!plain) out.push_back('"');
  for (const char c : word) {
    switch (c) {
      case '%':
        out += "%%";
        break;
      case '$':
        out += "$$";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          const auto u = static_cast<unsigned char>(c);
          out += absl::StrCat("\\x", std::string(1, kHex[u >> 4]), std::string(1, kHex[u & 15]));
        } else {
          out.push_back(c);
        }
    }
  }
  if (!plain) out.push_back('"');
  return out;
}

std::string RenderUnit(const std::string& binary, const std::vector<std::string>& flags) {
  std::string exec = SystemdWord(binary);
  for (const std::string& f : flags) absl::StrAppend(&exec, " ", SystemdWord(f));
  return absl::StrCat(
      "# Written by `nighfs-proxy init systemd`; remove with `nighfs-proxy deinit systemd`.\n"
      "[Unit]\n"
      "Description=nighfs proxy: writeback and read-through block cache near the mounts\n"
      "Documentation=man:nighfs-proxy(8)\n"
      "Wants=network-online.target\n"
      "After=network-online.target\n"
      "# Restart for as long as it takes: unflushed blocks wait on the proxy's disk.\n"
      "StartLimitIntervalSec=0\n"
      "\n"
      "[Service]\n"
      "Type=simple\n"
      "ExecStart=",
      exec, "\n",
      "Restart=always\n"
      "RestartSec=1\n"
      "# One descriptor per client connection and per cached block being read or written.\n"
      "LimitNOFILE=1048576\n"
      "\n"
      "[Install]\n"
      "WantedBy=multi-user.target\n");
}

// The executable `name` in $PATH, or "" when there is none (containers, CI).
std::string FindInPath(const std::string& name) {
  const std::string path = Env("PATH");
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

// Runs `argv` (its output goes to ours) and returns its exit status, or -1 if it did not run.
int RunCommand(const std::vector<std::string>& argv) {
  std::cout << "running: " << absl::StrJoin(argv, " ") << std::endl;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  if (const int err = ::posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ);
      err != 0) {
    std::cerr << "nighfs-proxy: cannot run " << argv[0] << ": " << std::strerror(err) << "\n";
    return -1;
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  return -1;
}

absl::StatusOr<std::string> ResolveBinary(const std::string& flag) {
  std::string path = flag;
  if (path.empty()) {
    // The nighfs-proxy running this command: the unit runs the same build.
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return Errno(errno, "cannot resolve", "/proc/self/exe (pass --binary)");
    path.assign(buf, static_cast<size_t>(n));
  }
  if (path.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("--binary ", path, ": give an absolute path (systemd needs one)"));
  }
  if (::access(path.c_str(), X_OK) != 0) {
    return Errno(errno, "--binary: cannot execute", path);
  }
  return path;
}

int InitSystemd(const SystemdArgs& a) {
  auto fail = [](int code, absl::string_view message) {
    std::cerr << "nighfs-proxy init systemd: " << message << "\n";
    return code;
  };
  absl::StatusOr<std::vector<std::string>> flags = SplitShellWords(a.start_flags);
  if (!flags.ok())
    return fail(kExitUsage, absl::StrCat("--start-flags: ", flags.status().message()));
  if (flags->empty()) return fail(kExitUsage, "--start-flags: no flags (the proxy needs --meta)");
  if ((*flags)[0] == "init" || (*flags)[0] == "deinit") {
    return fail(kExitUsage, "--start-flags: give the daemon's flags, not an init/deinit command");
  }
  absl::StatusOr<std::string> binary = ResolveBinary(a.binary);
  if (!binary.ok()) return fail(kExitUsage, binary.status().message());

  const std::string unit_path = absl::StrCat(a.unit_dir, "/", kUnitName);
  const std::string unit = RenderUnit(*binary, *flags);
  bool replaced = false;
  bool unchanged = false;
  if (absl::StatusOr<std::string> old = ReadSmallFile(unit_path, 1 << 20); old.ok()) {
    unchanged = *old == unit;
    replaced = !unchanged;
    if (replaced && !a.force) {
      return fail(
          kExitFailure,
          absl::StrCat(unit_path, " exists with other content; pass --force to replace it"));
    }
  }
  if (!unchanged) {
    if (absl::Status s = WriteFileAtomically(unit_path, unit, 0644, replaced); !s.ok()) {
      return fail(kExitFailure, s.message());
    }
  }
  std::cout << (unchanged ? "unchanged: " : "wrote ") << unit_path << "\n";

  const std::string systemctl = FindInPath("systemctl");
  if (systemctl.empty()) {
    std::cerr << "nighfs-proxy init systemd: systemctl not found in PATH: the unit was written "
                 "but systemd was not told; on a systemd host run: systemctl daemon-reload && "
                 "systemctl enable --now "
              << kUnitName << "\n";
    return a.now ? kExitFailure : kExitOk;
  }
  if (RunCommand({systemctl, "daemon-reload"}) != 0) {
    return fail(kExitFailure, "systemctl daemon-reload failed");
  }
  if (!a.now) {
    std::cout << "start it with: systemctl enable --now " << kUnitName << "\n";
    if (replaced) {
      std::cout << "a proxy already running keeps its old flags until: systemctl restart "
                << kUnitName << "\n";
    }
    return kExitOk;
  }
  if (replaced) {
    // enable --now leaves a running proxy on its old flags; a restart is safe (every
    // acknowledged block is in the journal and is flushed after the restart).
    if (RunCommand({systemctl, "enable", kUnitName}) != 0 ||
        RunCommand({systemctl, "restart", kUnitName}) != 0) {
      return fail(kExitFailure, absl::StrCat("systemctl could not enable and restart ", kUnitName,
                                             "; see: journalctl -u ", kUnitName));
    }
  } else if (RunCommand({systemctl, "enable", "--now", kUnitName}) != 0) {
    return fail(kExitFailure, absl::StrCat("systemctl enable --now ", kUnitName,
                                           " failed; see: journalctl -u ", kUnitName));
  }
  std::cout << "enabled and started " << kUnitName << "; check it with: systemctl status "
            << kUnitName << "\n";
  return kExitOk;
}

int DeinitSystemd(const std::string& unit_dir, bool force) {
  const std::string unit_path = absl::StrCat(unit_dir, "/", kUnitName);
  struct stat st;
  if (::lstat(unit_path.c_str(), &st) != 0) {
    std::cout << "no unit at " << unit_path << ": nothing to remove\n";
    return kExitOk;
  }
  const std::string systemctl = FindInPath("systemctl");
  if (systemctl.empty()) {
    std::cerr << "nighfs-proxy deinit systemd: systemctl not found in PATH: nothing was "
                 "stopped or disabled\n";
  } else if (RunCommand({systemctl, "disable", "--now", kUnitName}) != 0) {
    if (!force) {
      std::cerr << "nighfs-proxy deinit systemd: systemctl disable --now failed; kept " << unit_path
                << " (pass --force to remove it anyway)\n";
      return kExitFailure;
    }
    std::cerr << "nighfs-proxy deinit systemd: systemctl disable --now failed; removing the "
                 "unit anyway (--force)\n";
  }
  if (::unlink(unit_path.c_str()) != 0) {
    std::cerr << "nighfs-proxy deinit systemd: cannot remove " << unit_path << ": "
              << std::strerror(errno) << "\n";
    return kExitFailure;
  }
  std::cout << "removed " << unit_path << "\n";
  if (!systemctl.empty() && RunCommand({systemctl, "daemon-reload"}) != 0) {
    std::cerr << "nighfs-proxy deinit systemd: systemctl daemon-reload failed\n";
    return kExitFailure;
  }
  std::cout << "blocks the proxy had not flushed yet stay in its disk folder; a proxy started "
               "on the same --disk-folder and --db-folder flushes them\n";
  return kExitOk;
}

}  // namespace

std::optional<int> RunProxyAdminCommand(int argc, char** argv) {
  if (argc < 2) return std::nullopt;
  const absl::string_view cmd = argv[1];
  if (cmd != "init" && cmd != "deinit") return std::nullopt;

  CLI::App app{"nighfs-proxy administration: credentials file and systemd unit", "nighfs-proxy"};
  app.require_subcommand(1);
  CLI::App* init = app.add_subcommand("init", "write the credentials file or the systemd unit");
  init->require_subcommand(1);
  CLI::App* deinit = app.add_subcommand("deinit", "remove what init wrote");
  deinit->require_subcommand(1);

  CredsArgs creds;
  CLI::App* init_creds = init->add_subcommand(
      "creds",
      "write the object store credentials the proxy uses (mode 0600); from the flags, "
      "else from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, "
      "AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN");
  init_creds->add_option("--creds-file", creds.creds_file, "the file to write")
      ->type_name("FILE")
      ->capture_default_str();
  CLI::Option* id_opt = init_creds
                            ->add_option("--access-key-id", creds.access_key_id,
                                         "S3 access key id (GCS/OCI: HMAC key id)")
                            ->type_name("ID");
  std::vector<CLI::Option*> credential_opts = {id_opt};
  for (size_t i = 0; i < std::size(kSecretFileFlags); ++i) {
    credential_opts.push_back(
        init_creds
            ->add_option(kSecretFileFlags[i].flag, creds.secret_files[i], kSecretFileFlags[i].help)
            ->type_name("FILE"));
  }
  init_creds->add_flag("--force", creds.force, "replace an existing file");

  SystemdArgs systemd;
  CLI::App* init_systemd = init->add_subcommand(
      "systemd",
      "write the nighfs-proxy.service unit, reload systemd, and with --now enable "
      "and start it");
  init_systemd->add_flag("--now", systemd.now, "enable and start the service");
  init_systemd
      ->add_option("--start-flags", systemd.start_flags,
                   "the daemon's flags, one string split like a shell would "
                   "(e.g. \"--meta meta:7420 --disk-folder '/data/proxy cache'\")")
      ->type_name("FLAGS")
      ->required();
  init_systemd->add_option("--unit-dir", systemd.unit_dir, "where to write the unit")
      ->type_name("DIR")
      ->capture_default_str();
  init_systemd
      ->add_option("--binary", systemd.binary,
                   "absolute path of the nighfs-proxy to run (default: this one)")
      ->type_name("PATH");
  init_systemd->add_flag("--force", systemd.force, "replace a unit with other content");

  std::string deinit_creds_file = kDefaultCredsFile;
  CLI::App* deinit_creds = deinit->add_subcommand("creds", "remove the credentials file");
  deinit_creds->add_option("--creds-file", deinit_creds_file, "the file to remove")
      ->type_name("FILE")
      ->capture_default_str();

  std::string deinit_unit_dir = kDefaultUnitDir;
  bool deinit_force = false;
  CLI::App* deinit_systemd =
      deinit->add_subcommand("systemd", "stop and disable the service, then remove its unit");
  deinit_systemd->add_option("--unit-dir", deinit_unit_dir, "where the unit is")
      ->type_name("DIR")
      ->capture_default_str();
  deinit_systemd->add_flag("--force", deinit_force,
                           "remove the unit even if systemctl cannot stop it");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help arrives here too, with exit code 0.
    return app.exit(e, std::cout, std::cerr) == 0 ? kExitOk : kExitUsage;
  }
  if (init_creds->parsed()) {
    bool any_flag_given = false;
    for (const CLI::Option* o : credential_opts) any_flag_given |= o->count() > 0;
    return InitCreds(creds, any_flag_given);
  }
  if (init_systemd->parsed()) return InitSystemd(systemd);
  if (deinit_creds->parsed()) return DeinitCreds(deinit_creds_file);
  if (deinit_systemd->parsed()) return DeinitSystemd(deinit_unit_dir, deinit_force);
  return kExitUsage;
}

}  // namespace nighfs::proxy
