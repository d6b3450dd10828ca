#include "meta/auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "google/protobuf/descriptor.h"
#include "metadata_client/meta_api.h"
#include "metadata_client/scoped_meta.h"

namespace nighfs::meta {
namespace {

using google::protobuf::FieldDescriptor;

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::FailedPreconditionError(
      absl::StrCat(std::string(what), " ", path, ": ", std::strerror(errno)));
}

bool SameHash(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// The Nighfs-Session header's key, or "" when absent or not hex.
std::string SessionKey(const ServerRequest& http) {
  const std::string hex = std::string(absl::StripAsciiWhitespace(http.Header(std::string(kSessionHeader))));
  if (hex.empty() || hex.size() % 2 != 0) return "";
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return "";
  }
  return absl::HexStringToBytes(hex);
}

}  // namespace

absl::StatusOr<std::string> LoadOrCreateAdminToken(const std::string& path, bool rotate,
                                                   bool* created) {
  *created = false;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    // A folder made here is private; one that existed (the state folder nighfs-meta made
    // 0700 already, or one an admin chose, maybe /etc/nighfs) keeps its mode: the file itself
    // is 0600.
    const bool made = std::filesystem::create_directories(dir, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create folder ", dir.string(), ": ", ec.message()));
    }
    if (made && ::chmod(dir.c_str(), 0700) != 0) {
      return Errno("cannot make private (0700)", dir.string());
    }
  }
  if (!rotate) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
      // Ours: made private again if someone widened it.
      (void)::fchmod(fd, 0600);
      std::string text;
      char buf[512];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0 && text.size() < 4096) text.append(buf, n);
      ::close(fd);
      std::string token(absl::StripAsciiWhitespace(text));
      if (token.size() >= 32) return token;
      return absl::FailedPreconditionError(absl::StrCat(
          "admin token file ", path, " is empty or too short; delete it to make a new one"));
    }
    if (errno != ENOENT) return Errno("cannot open admin token file", path);
  }
  const std::string token =
      std::string(kAdminTokenPrefix) + absl::BytesToHexString(RandomBytes(32));
  // Written to a private temporary file and renamed, so the file is never seen half written
  // or with another mode.
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Errno("cannot create", tmp);
  const std::string line = token + "\n";
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    errno = ok ? errno : err;
    absl::Status s = Errno("cannot write admin token file", path);
    ::unlink(tmp.c_str());
    return s;
  }
  *created = true;
  return token;
}

MetaAuthorizer::MetaAuthorizer(MetaService* service, MetaAuthOptions options)
    : service_(service),
      admin_hash_(options.admin_token.empty() ? std::string() : Sha256(options.admin_token)),
      options_([&] {
        options.admin_token.clear();  // only its hash is kept
        return options;
      }()) {}

bool MetaAuthorizer::IsAdminOnly(std::string_view method) {
  static constexpr std::string_view kAdminOnly[] = {"CreateVolume", "ListVolumes",
                                                    "DeleteVolume", "CreateToken",
                                                    "ListTokens",   "RevokeToken",
                                                    // Proxy groups: configuration is the
                                                    // admin's; GetVolumeRoutes is scoped by
                                                    // its volume_id like any volume call.
                                                    "CreateProxyGroup", "UpdateProxyGroup",
                                                    "ListProxyGroups", "DeleteProxyGroup",
                                                    "CreateVolumeProxyGroup",
                                                    "ListVolumeProxyGroups",
                                                    "DeleteVolumeProxyGroup"};
  for (std::string_view m : kAdminOnly) {
    if (m == method) return true;
  }
  return false;
}

bool MetaAuthorizer::IsProxyMethod(std::string_view method) {
  return method == "AuthorizeBlockAccess" || method == "DeadBlocks";
}

bool MetaAuthorizer::NeedsWrite(std::string_view method,
                                const google::protobuf::Message& request) {
  // Mount carries a request id (a retry must not open a second session) but changes no file:
  // a read-only token mounts too.
  return IsMutation(method, request);
}

absl::StatusOr<TokenGrant> MetaAuthorizer::LookupToken(const std::string& secret) {
  const std::string hash = Sha256(secret);
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end() && now - it->second.fetched < options_.cache_ttl) {
      return it->second.grant;
    }
  }
  absl::StatusOr<std::optional<TokenGrant>> found = service_->FindToken(secret);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return absl::UnauthenticatedError("invalid token");
  absl::MutexLock lock(&mu_);
  // A simple bound: tokens in use are few; a flood of distinct valid tokens only costs lookups.
  if (cache_.size() >= options_.cache_entries) cache_.clear();
  cache_[hash] = Cached{**found, now};
  return **found;
}

absl::Status MetaAuthorizer::CheckSession(uint64_t session_id, const std::string& key,
                                          uint64_t token_id) {
  const std::string hash = Sha256(key);
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it != sessions_.end() && now - it->second.fetched < options_.cache_ttl &&
        it->second.token_id == token_id && SameHash(it->second.key_hash, hash)) {
      return absl::OkStatus();
    }
  }
  if (absl::Status s = service_->CheckSessionKey(session_id, key, token_id); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (sessions_.size() >= options_.cache_entries) sessions_.clear();
  sessions_[session_id] = Bound{hash, token_id, now};
  return absl::OkStatus();
}

absl::StatusOr<Principal> MetaAuthorizer::Authenticate(const ServerRequest& http,
                                                       std::string* volume_name) {
  const std::string header = http.Header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() ||
      !absl::EqualsIgnoreCase(header.substr(0, kBearer.size()), std::string(kBearer))) {
    return absl::UnauthenticatedError(
        "no credentials: send \"Authorization: Bearer <token>\" (a volume token, or the admin "
        "token for administration)");
  }
  const std::string token(absl::StripAsciiWhitespace(header.substr(kBearer.size())));
  Principal p;
  if (token.starts_with(kAdminTokenPrefix)) {
    if (admin_hash_.empty() || !SameHash(Sha256(token), admin_hash_)) {
      return absl::UnauthenticatedError("invalid admin token");
    }
    p.kind = Principal::Kind::kAdmin;
    return p;
  }
  if (!token.starts_with(kVolumeTokenPrefix)) {
    return absl::UnauthenticatedError("invalid token");
  }
  absl::StatusOr<TokenGrant> grant = LookupToken(token);
  if (!grant.ok()) {
    if (grant.status().code() == absl::StatusCode::kUnauthenticated) return grant.status();
    NIGHFS_LOG(ERROR) << "token lookup failed: " << grant.status();
    return absl::UnavailableError("cannot check the token now");
  }
  if (absl::Status s = CheckTokenLive(*grant, service_->NowNs()); !s.ok()) return s;
  if (grant->proxy) {
    p.kind = Principal::Kind::kProxy;
    p.token_id = grant->id;
    p.volume_id = 0;
    p.can_write = false;
    return p;
  }
  p.kind = Principal::Kind::kVolumeToken;
  p.token_id = grant->id;
  p.volume_id = grant->volume_id;
  p.can_write = grant->can_write;
  p.root_ino = grant->root_ino;
  if (volume_name != nullptr) *volume_name = grant->volume_name;
  return p;
}

absl::Status MetaAuthorizer::Authorize(std::string_view method, const ServerRequest& http,
                                       const google::protobuf::Message& request,
                                       std::string_view volume_name, Principal* principal) {
  switch (principal->kind) {
    case Principal::Kind::kInternal:
    case Principal::Kind::kAdmin:
      return absl::OkStatus();
    case Principal::Kind::kProxy:
      // Default deny: a proxy's credential reaches nothing but the proxy calls.
      if (IsProxyMethod(method)) return absl::OkStatus();
      return absl::PermissionDeniedError(
          absl::StrCat(std::string(method), " cannot be called with a proxy token"));
    case Principal::Kind::kVolumeToken:
      break;
  }
  // Before the generic checks below: DeadBlocksRequest names a volume_id, which alone would
  // let a token of that volume through.
  if (IsProxyMethod(method)) {
    return absl::PermissionDeniedError(absl::StrCat(
        std::string(method), " needs a proxy token or the admin token; a volume token cannot "
        "call it"));
  }
  if (IsAdminOnly(method)) {
    return absl::PermissionDeniedError(
        absl::StrCat(std::string(method), " needs the admin token; a volume token cannot call it"));
  }
  const google::protobuf::Descriptor* d = request.GetDescriptor();
  const google::protobuf::Reflection* r = request.GetReflection();
  bool scoped = false;
  if (const FieldDescriptor* f = d->FindFieldByName("volume_id");
      f != nullptr && f->type() == FieldDescriptor::TYPE_UINT64 && !f->is_repeated()) {
    scoped = true;
    if (r->GetUInt64(request, f) != principal->volume_id) {
      return absl::PermissionDeniedError("this token is not valid for that volume");
    }
  }
  if (const FieldDescriptor* f = d->FindFieldByName("volume_name");
      f != nullptr && f->type() == FieldDescriptor::TYPE_STRING && !f->is_repeated()) {
    scoped = true;
    if (r->GetString(request, f) != volume_name) {
      return absl::PermissionDeniedError("this token is not valid for that volume");
    }
  }
  const FieldDescriptor* session = d->FindFieldByName("session_id");
  if (session != nullptr && session->type() == FieldDescriptor::TYPE_UINT64 &&
      !session->is_repeated()) {
    scoped = true;
  }
  if (!scoped) {
    return absl::PermissionDeniedError(
        absl::StrCat(std::string(method), " names no volume; a volume token cannot call it"));
  }
  if (NeedsWrite(method, request) && !principal->can_write) {
    return absl::PermissionDeniedError("read-only token: this call changes the volume");
  }
  std::vector<uint64_t> inodes;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (!IsInodeField(f)) continue;
    if (f->is_repeated()) {
      for (int j = 0; j < r->FieldSize(request, f); ++j) {
        inodes.push_back(r->GetRepeatedUInt64(request, f, j));
      }
    } else {
      inodes.push_back(r->GetUInt64(request, f));
    }
  }
  for (uint64_t ino : inodes) {
    if (ino == 0) continue;
    absl::StatusOr<bool> inside =
        service_->InSubtree(principal->volume_id, ino, principal->root_ino, principal->token_id);
    if (!inside.ok()) return inside.status();
    if (!*inside) {
      return absl::PermissionDeniedError(
          absl::StrCat("inode ", ino, " is outside this token's subtree"));
    }
  }
  if (session != nullptr) {
    const uint64_t id = r->GetUInt64(request, session);
    if (id != 0) {
      const std::string key = SessionKey(http);
      if (key.empty()) {
        return absl::PermissionDeniedError(absl::StrCat(
            std::string(method), " names session ", id, " but no session key came (header ",
            std::string(kSessionHeader), ")"));
      }
      if (absl::Status s = CheckSession(id, key, principal->token_id); !s.ok()) {
        return s;
      }
      principal->session_id = id;
    }
  }
  // Only for parent_unchanged: a session that cannot be checked means "nobody", not an error
  // (an expired session must not fail a create before the mount registers again).
  if (const FieldDescriptor* f = d->FindFieldByName("changer_session_id");
      f != nullptr && f->type() == FieldDescriptor::TYPE_UINT64 && !f->is_repeated()) {
    const uint64_t id = r->GetUInt64(request, f);
    const std::string key = SessionKey(http);
    if (id != 0 && !key.empty() && CheckSession(id, key, principal->token_id).ok()) {
      principal->changer_session_id = id;
    }
  }
  return absl::OkStatus();
}

void RegisterMetaServiceWithAuth(MetaService* service, MetaAuthorizer* auth,
                                 ConnectRouter* router) {
#define NIGHFS_REGISTER_AUTHED_META_CALL(M, Req, Resp)                                   \
  router->AddWithRequest<pb::Req, pb::Resp>(                                             \
      MetaMethodPath(#M),                                                                \
      [service, auth](const ServerRequest& http,                                         \
                      const pb::Req& req) -> absl::StatusOr<pb::Resp> {                  \
        std::string volume;                                                              \
        absl::StatusOr<Principal> who = auth->Authenticate(http, &volume);               \
        if (!who.ok()) return who.status();                                              \
        if (absl::Status s = auth->Authorize(#M, http, req, volume, &*who); !s.ok()) {   \
          return s;                                                                      \
        }                                                                                \
        ScopedPrincipal scope(*who);                                                     \
        return service->M(req);                                                          \
      });
  NIGHFS_META_METHODS(NIGHFS_REGISTER_AUTHED_META_CALL)
#undef NIGHFS_REGISTER_AUTHED_META_CALL
}

}  // namespace nighfs::meta
