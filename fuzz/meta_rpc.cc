// Fuzz target: nighfs-meta's RPC surface. The input is a sequence of calls, each
//   [u8 n][n bytes: method name][u16 little-endian m][m bytes: request body]
// sent as POST /nighfs.meta.v1.MetaService/<name> (Content-Type: application/proto) through
// ConnectRouter::Handle with RegisterMetaServiceWithAuth (as the admin) on a real meta::MetaService over SQLite, as
// nighfs-meta serves it (minus the HTTP layer, which http_request.cc covers). So every request
// decoder runs, and the handler behind it whenever the body decodes.
//
// The database is made once per process: volume "vol" (id 1, a mem:// store) mounted by
// session 1, with directory "d" (ino 2), file "f" (ino 3, one 4-byte block, xattr user.a) and
// symlink "l" -> "f" (ino 4), which the seed corpus names. It is copied from a template and
// reopened every NIGHFS_FUZZ_META_RESET inputs (default 500; 1 to replay one input exactly as
// after a fresh start), so state the inputs pile up stays bounded.
//
// Block stores: only mem:// URLs open, each a fresh in-memory store; any other URL is refused
// before it is contacted, so no input makes the fuzzer create folders or reach the network.
//
// Checks beyond the sanitizers: every reply has a status Connect defines and a body of the
// right kind (a decodable response message on 200, a ConnectError JSON otherwise), and no
// request makes the server answer 500: bad input is the client's error (4xx), never the
// server's.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "blockstore/block_store.h"
#include "common/connect.h"
#include "common/logging.h"
#include "error.pb.h"
#include "fuzz/fuzz_util.h"
#include "google/protobuf/util/json_util.h"
#include "meta/auth.h"
#include "meta/meta_service.h"
#include "metadata_client/meta_client.h"

namespace nighfs::fuzz {
namespace {

constexpr std::string_view kAdminToken = "nighfs-admin-fuzz";

constexpr int kMaxCallsPerInput = 16;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "meta_rpc: %s\n", what.c_str());
  std::abort();
}

template <class T>
T Check(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Fail(absl::StrCat("setup: ", what, ": ", v.status().ToString()));
  return *std::move(v);
}

meta::MetaServiceOptions Options(const std::string& db_path) {
  meta::MetaServiceOptions o;
  o.db_path = db_path;
  o.run_background = false;
  o.read_connections = 1;
  o.allow_test_stores = true;
  o.open_store = [](const std::string& url)
      -> absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> {
    absl::StatusOr<blockstore::StoreUrl> parsed = blockstore::ParseStoreUrl(url);
    if (!parsed.ok()) return parsed.status();
    if (parsed->scheme != "mem") {
      return absl::InvalidArgumentError("fuzz: only mem:// stores are opened");
    }
    return blockstore::NewMemoryStore(parsed->authority);
  };
  return o;
}

// Writes the template database the inputs start from (see the file comment).
void MakeTemplate(const std::string& db_path) {
  std::unique_ptr<meta::MetaService> svc =
      Check(meta::MetaService::Open(Options(db_path)), "open template");
  pb::CreateVolumeRequest cv;
  cv.set_name("vol");
  cv.set_store_url("mem://fuzz");
  cv.set_block_size(64 * 1024);
  const uint64_t vol = Check(svc->CreateVolume(cv), "CreateVolume").volume().id();
  pb::MountRequest mount;
  mount.set_volume_name("vol");
  mount.set_hostname("fuzz");
  mount.set_mount_point("/mnt");
  const uint64_t session = Check(svc->Mount(mount), "Mount").session_id();
  pb::MkdirRequest mkdir;
  mkdir.set_volume_id(vol);
  mkdir.set_parent(1);
  mkdir.set_name("d");
  mkdir.set_mode(0755);
  Check(svc->Mkdir(mkdir), "Mkdir");
  pb::MknodRequest mknod;
  mknod.set_volume_id(vol);
  mknod.set_parent(1);
  mknod.set_name("f");
  mknod.set_mode(0100644);
  const uint64_t file = Check(svc->Mknod(mknod), "Mknod").attr().ino();
  pb::AllocBlockIdsRequest alloc;
  alloc.set_volume_id(vol);
  alloc.set_count(1);
  alloc.set_session_id(session);
  const uint64_t block_id = Check(svc->AllocBlockIds(alloc), "AllocBlockIds").first_id();
  pb::CommitBlocksRequest commit;
  commit.set_volume_id(vol);
  commit.set_ino(file);
  pb::Block* b = commit.add_blocks();
  b->set_index(0);
  b->set_id(block_id);
  b->set_length(4);
  b->set_object_size(4);
  commit.set_min_size(4);
  Check(svc->CommitBlocks(commit), "CommitBlocks");
  pb::SymlinkRequest symlink;
  symlink.set_volume_id(vol);
  symlink.set_parent(1);
  symlink.set_name("l");
  symlink.set_target("f");
  Check(svc->Symlink(symlink), "Symlink");
  pb::SetXattrRequest xattr;
  xattr.set_volume_id(vol);
  xattr.set_ino(file);
  xattr.set_name("user.a");
  xattr.set_value("1");
  Check(svc->SetXattr(xattr), "SetXattr");
  if (vol != 1 || session != 1 || file != 3) {
    Fail(absl::StrCat("setup: ids changed (volume ", vol, ", session ", session, ", file ",
                      file, "): update the seed corpus and this comment"));
  }
}

// Whether a 200 body decodes as the response of `method` (an unknown method never gets 200).
using ResponseCheck = std::function<bool(const std::string&)>;
const std::map<std::string, ResponseCheck, std::less<>>& ResponseChecks() {
  static const auto* const checks = [] {
    auto* m = new std::map<std::string, ResponseCheck, std::less<>>;
#define NIGHFS_FUZZ_RESPONSE_CHECK(M, Req, Resp) \
  (*m)[#M] = [](const std::string& body) { return pb::Resp().ParseFromString(body); };
    NIGHFS_META_METHODS(NIGHFS_FUZZ_RESPONSE_CHECK)
#undef NIGHFS_FUZZ_RESPONSE_CHECK
    return m;
  }();
  return *checks;
}

class Fixture {
 public:
  Fixture() {
    SetLogLevel(LogLevel::ERROR);
    const std::string& dir = ScratchDir();
    template_path_ = dir + "/template.db";
    work_path_ = dir + "/work.db";
    MakeTemplate(template_path_);
    const char* reset = std::getenv("NIGHFS_FUZZ_META_RESET");
    if (reset != nullptr && (!absl::SimpleAtoi(reset, &reset_every_) || reset_every_ < 1)) {
      Fail(absl::StrCat("NIGHFS_FUZZ_META_RESET='", reset, "': want a count >= 1"));
    }
  }

  const ConnectRouter& Router() {
    if (service_ == nullptr || ++inputs_ >= reset_every_) Reset();
    return *router_;
  }

 private:
  void Reset() {
    router_.reset();
    auth_.reset();
    service_.reset();
    inputs_ = 0;
    namespace fs = std::filesystem;
    for (const char* suffix : {"", "-wal", "-shm"}) {
      fs::remove(work_path_ + suffix);
      if (fs::exists(template_path_ + suffix)) {
        fs::copy_file(template_path_ + suffix, work_path_ + suffix);
      }
    }
    service_ = Check(meta::MetaService::Open(Options(work_path_)), "reopen");
    router_ = std::make_unique<ConnectRouter>();
    // Every call as the admin: authentication is in the path, and the handlers behind it (the
    // decoders this target is for) see every request.
    meta::MetaAuthOptions auth;
    auth.admin_token = std::string(kAdminToken);
    auth_ = std::make_unique<meta::MetaAuthorizer>(service_.get(), auth);
    meta::RegisterMetaServiceWithAuth(service_.get(), auth_.get(), router_.get());
  }

  std::string template_path_;
  std::string work_path_;
  int reset_every_ = 500;
  int inputs_ = 0;
  std::unique_ptr<meta::MetaService> service_;
  std::unique_ptr<meta::MetaAuthorizer> auth_;
  std::unique_ptr<ConnectRouter> router_;
};

void CheckReply(std::string_view method, const ServerResponse& r) {
  const std::string where = absl::StrCat(std::string(method), ": HTTP ", r.status, ": ", r.body);
  if (r.status == 200) {
    const auto& checks = ResponseChecks();
    auto it = checks.find(method);
    if (r.content_type != "application/proto" || it == checks.end() || !it->second(r.body)) {
      Fail(absl::StrCat("bad success reply: ", where));
    }
    return;
  }
  switch (r.status) {
    case 400: case 401: case 403: case 404: case 405: case 409: case 415: case 429: case 499:
    case 501: case 503: case 504:
      break;
    default:
      // 500 is Internal, Unknown or DataLoss: a request the server could not handle.
      Fail(absl::StrCat("server error for a client's request: ", where));
  }
  rpc::v1::ConnectError err;
  if (r.content_type != "application/json" ||
      !google::protobuf::util::JsonStringToMessage(r.body, &err).ok() || err.code().empty()) {
    Fail(absl::StrCat("error reply is not a ConnectError: ", where));
  }
}

}  // namespace
}  // namespace nighfs::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nighfs::fuzz;  // NOLINT
  static Fixture* const fixture = new Fixture;
  const nighfs::ConnectRouter& router = fixture->Router();
  InputReader in(data, size);
  for (int i = 0; i < kMaxCallsPerInput && !in.empty(); ++i) {
    const std::string_view method = in.Bytes(in.Byte());
    const std::string_view body = in.Bytes(in.U16());
    nighfs::ServerRequest req;
    req.method = "POST";
    req.target = nighfs::MetaMethodPath(method);
    req.headers = {{"Content-Type", "application/proto"},
                   {"Authorization", "Bearer " + std::string(kAdminToken)}};
    req.body = std::string(body);
    req.remote = "127.0.0.1:1";
    const nighfs::ServerResponse resp = router.Handle(req);
    // NIGHFS_FUZZ_VERBOSE=1: what each call got, to check that a seed reaches its handler.
    static const bool verbose = std::getenv("NIGHFS_FUZZ_VERBOSE") != nullptr;
    if (verbose) {
      std::fprintf(stderr, "meta_rpc: %.*s -> %d %s\n", static_cast<int>(method.size()),
                   method.data(), resp.status, resp.status == 200 ? "" : resp.body.c_str());
    }
    CheckReply(method, resp);
  }
  return 0;
}
