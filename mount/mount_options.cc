#include "mount/mount_options.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "blockstore/proxy_store.h"
#include <algorithm>
#include <filesystem>

namespace nighfs::fs {
namespace {

absl::Status BadOption(const std::string& opt, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("option '", opt, "': ", why));
}

absl::StatusOr<double> Number(const std::string& opt, const std::string& value) {
  double d = 0;
  if (!absl::SimpleAtod(value, &d) || d < 0) return BadOption(opt, "expects a number >= 0");
  return d;
}

absl::Status ApplyOption(const std::string& opt, MountOptions* o) {
  const size_t eq = opt.find('=');
  const std::string key = opt.substr(0, eq);
  const std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
  const bool has_value = eq != std::string::npos;
  auto need_value = [&]() -> absl::Status {
    return has_value && !value.empty() ? absl::OkStatus() : BadOption(opt, "needs a value");
  };
  // Options of mount(8) and fstab that mean nothing to the daemon.
  static const char* kIgnored[] = {"defaults", "_netdev", "auto", "noauto", "user", "users",
                                   "nouser", "nofail", "owner", "group", "comment", "x-systemd",
                                   "default_permissions", "loop"};
  for (const char* ig : kIgnored) {
    if (key == ig || key.rfind("x-", 0) == 0 || key.rfind("comment=", 0) == 0) return absl::OkStatus();
  }
  // Generic mount flags, passed on to the kernel.
  static const char* kKernel[] = {"nosuid", "suid", "nodev", "dev", "noexec", "exec", "atime",
                                  "noatime", "relatime", "norelatime", "strictatime",
                                  "nodiratime", "diratime", "sync", "async", "dirsync"};
  for (const char* k : kKernel) {
    if (key == k && !has_value) {
      o->kernel_options.push_back(key);
      return absl::OkStatus();
    }
  }
  if (key == "ro") { o->read_only = true; return absl::OkStatus(); }
  if (key == "rw") { o->read_only = false; return absl::OkStatus(); }
  if (key == "allow_other") { o->allow_other = true; return absl::OkStatus(); }
  if (key == "noallow_other") { o->allow_other = false; return absl::OkStatus(); }
  if (key == "allow_stacked") { o->allow_stacked = true; return absl::OkStatus(); }
  if (key == "foreground") { o->foreground = true; return absl::OkStatus(); }
  if (key == "debug") { o->debug = true; o->foreground = true; return absl::OkStatus(); }
  if (key == "fsname") { if (!need_value().ok()) return need_value(); o->fsname = value; return absl::OkStatus(); }
  if (key == "log_level") { if (!need_value().ok()) return need_value(); o->log_level = value; return absl::OkStatus(); }
  if (key == "log_file") { if (!need_value().ok()) return need_value(); o->log_file = value; return absl::OkStatus(); }
  if (key == "spill_dir") { if (!need_value().ok()) return need_value(); o->fs.spill_dir = value; return absl::OkStatus(); }
  if (key == "ca_file") {
    if (!need_value().ok()) return need_value();
    // Absolute: a background mount changes its working folder to /.
    std::error_code ec;
    o->ca_file = std::filesystem::absolute(value, ec).lexically_normal().string();
    if (ec) return BadOption(opt, ec.message());
    return absl::OkStatus();
  }
  if (key == "token_file") {
    if (!need_value().ok()) return need_value();
    std::error_code ec;  // absolute, as ca_file
    o->token_file = std::filesystem::absolute(value, ec).lexically_normal().string();
    if (ec) return BadOption(opt, ec.message());
    return absl::OkStatus();
  }
  if (key == "proxy") {
    if (!need_value().ok()) return need_value();
    // A typo fails here, before any connection is tried.
    if (absl::Status s = blockstore::NormalizeProxyAddress(value).status(); !s.ok()) {
      return BadOption(opt, std::string(s.message()));
    }
    o->proxy = value;
    return absl::OkStatus();
  }
  if (key == "credentials") { if (!need_value().ok()) return need_value(); o->credentials_file = value; o->credentials_given = true; return absl::OkStatus(); }
  if (key == "attr_timeout" || key == "entry_timeout" || key == "meta_timeout" ||
      key == "mount_timeout" || key == "flush_timeout" || key == "retry_max" ||
      key == "probe_interval" || key == "probe_timeout" || key == "route_deadline") {
    if (!need_value().ok()) return need_value();
    absl::StatusOr<double> d = Number(opt, value);
    if (!d.ok()) return d.status();
    absl::Duration dur = absl::Seconds(*d);
    if (key == "attr_timeout") o->fs.attr_timeout = dur;
    if (key == "entry_timeout") o->fs.entry_timeout = dur;
    if (key == "meta_timeout") o->meta_timeout = dur;
    if (key == "mount_timeout") o->mount_timeout = dur;
    if (key == "flush_timeout") o->fs.flush_timeout = dur;
    if (key == "probe_interval" || key == "probe_timeout" || key == "route_deadline") {
      if (*d <= 0) return BadOption(opt, "expects a positive number of seconds");
      if (key == "probe_interval") o->probe_interval = dur;
      if (key == "probe_timeout") o->probe_timeout = dur;
      if (key == "route_deadline") o->route_deadline = dur;
    }
    if (key == "retry_max") {
      if (*d <= 0) return BadOption(opt, "expects a positive number of seconds");
      o->fs.retry_max_backoff = dur;
      o->fs.retry_initial_backoff = std::min(o->fs.retry_initial_backoff, dur);
    }
    return absl::OkStatus();
  }
  if (key == "cache_size" || key == "writeback_limit" || key == "readahead" ||
      key == "io_threads") {
    if (!need_value().ok()) return need_value();
    uint64_t n = 0;
    if (!absl::SimpleAtoi(value, &n)) return BadOption(opt, "expects a whole number");
    if (key == "cache_size") o->fs.cache_bytes = static_cast<size_t>(n) << 20;
    if (key == "writeback_limit") o->fs.writeback_bytes = static_cast<size_t>(std::max<uint64_t>(n, 16)) << 20;
    if (key == "readahead") o->fs.readahead_blocks = static_cast<int>(std::min<uint64_t>(n, 64));
    if (key == "io_threads") o->fs.io_threads = static_cast<int>(std::clamp<uint64_t>(n, 1, 128));
    return absl::OkStatus();
  }
  if (key == "inline_max") {
    if (!need_value().ok()) return need_value();
    uint32_t n = 0;
    if (!absl::SimpleAtoi(value, &n) || n == kInlineFromServer) {
      return BadOption(opt, "expects a whole number of bytes");
    }
    o->fs.inline_max_bytes = n;  // within the server's limit, at mount (ResolveInlineMax)
    return absl::OkStatus();
  }
  return BadOption(opt, "unknown option (see man mount.nighfs)");
}

}  // namespace

absl::Status ParseVolumeSpec(const std::string& spec, std::string* volume, std::string* address) {
  std::string vol, addr;
  if (spec.rfind("nighfs://", 0) == 0) {
    std::string rest = spec.substr(9);
    size_t slash = rest.find('/');
    if (slash == std::string::npos) {
      return absl::InvalidArgumentError("volume spec '" + spec + "': expected nighfs://HOST:PORT/VOLUME");
    }
    addr = rest.substr(0, slash);
    vol = rest.substr(slash + 1);
    while (!vol.empty() && vol.back() == '/') vol.pop_back();
  } else {
    size_t at = spec.rfind('@');
    if (at == std::string::npos) {
      return absl::InvalidArgumentError("volume spec '" + spec +
                                        "': expected VOLUME@HOST:PORT or nighfs://HOST:PORT/VOLUME");
    }
    vol = spec.substr(0, at);
    addr = spec.substr(at + 1);
  }
  if (vol.empty() || vol.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("volume spec '" + spec + "': bad volume name");
  }
  if (addr.empty()) return absl::InvalidArgumentError("volume spec '" + spec + "': no metadata server address");
  if (addr.find(':') == std::string::npos) addr += ":7420";
  *volume = vol;
  *address = addr;
  return absl::OkStatus();
}

absl::StatusOr<MountOptions> ParseMountArgs(const std::vector<std::string>& args) {
  MountOptions o;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-o") {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError("-o needs options");
      for (absl::string_view opt : absl::StrSplit(args[++i], ',', absl::SkipEmpty())) {
        absl::Status s = ApplyOption(std::string(opt), &o);
        if (!s.ok()) return s;
      }
    } else if (a.rfind("-o", 0) == 0 && a.size() > 2) {
      for (absl::string_view opt : absl::StrSplit(a.substr(2), ',', absl::SkipEmpty())) {
        absl::Status s = ApplyOption(std::string(opt), &o);
        if (!s.ok()) return s;
      }
    } else if (a == "-f" || a == "--foreground") {
      o.foreground = true;
    } else if (a == "-d" || a == "--debug") {
      o.debug = true;
      o.foreground = true;
    } else if (a == "-s" || a == "-n" || a == "-v" || a == "--sloppy") {
      // mount(8) helper flags: sloppy options, no mtab, verbose. Nothing to do.
    } else if (!a.empty() && a[0] == '-') {
      return absl::InvalidArgumentError("unknown flag " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) {
    return absl::InvalidArgumentError("expected a volume spec and a mount point");
  }
  absl::Status s = ParseVolumeSpec(positional[0], &o.volume, &o.meta_address);
  if (!s.ok()) return s;
  o.mount_point = positional[1];
  if (o.fsname.empty()) o.fsname = positional[0];
  return o;
}

std::string MountUsage() {
  return "usage: mount.nighfs VOLUME@HOST:PORT MOUNTPOINT [-o OPTIONS] [-f] [-d]\n"
         "       mount.nighfs nighfs://HOST:PORT/VOLUME MOUNTPOINT [-o OPTIONS]\n"
         "options: ro, rw, allow_other (default), attr_timeout=S, entry_timeout=S,\n"
         "  cache_size=MiB, readahead=BLOCKS, writeback_limit=MiB, io_threads=N,\n"
         "  inline_max=BYTES (small files kept by the metadata server; 0 = never),\n"
         "  meta_timeout=S, mount_timeout=S, flush_timeout=S, retry_max=S, spill_dir=PATH,\n"
         "  token_file=FILE (the volume token, mode 0600), credentials=FILE, ca_file=PEM,\n"
         "  proxy=HOST:PORT (block I/O through a nighfs-proxy; no store credentials needed),\n"
         "  probe_interval=S (1), probe_timeout=S (0.5), route_deadline=S (60) for proxy groups,\n"
         "  log_level=LEVEL, log_file=PATH, fsname=NAME, allow_stacked,\n"
         "  foreground, debug, and the generic mount flags (nosuid, nodev, noexec, noatime,\n"
         "  ...). See man mount.nighfs.\n";
}

}  // namespace nighfs::fs
