// The fixture of the file-system logic tests (no FUSE): an in-process metadata service and an
// in-memory block store behind forwarders that inject faults and count metadata calls.
#ifndef NIGHFS_TESTS_MOUNT_FS_FIXTURE_H_
#define NIGHFS_TESTS_MOUNT_FS_FIXTURE_H_

#include <fcntl.h>

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "common/errno_status.h"
#include "gtest/gtest.h"
#include "meta/meta_service.h"
#include "metadata_client/meta_api.h"
#include "mount/filesystem.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::fs {

namespace pb = ::nighfs::meta::v1;
using blockstore::FaultInjectingStore;
using testing::TempDir;

inline constexpr uint32_t kBs = 64 << 10;
inline constexpr Caller kRoot{0, 0};

// A store that forwards to another (the GC's view of the same memory store).
class Forwarder : public blockstore::BlockStore {
 public:
  explicit Forwarder(blockstore::BlockStore* s) : s_(s) {}
  absl::StatusOr<std::string> Get(std::string_view k, uint64_t o, uint64_t l) override { return s_->Get(k, o, l); }
  absl::Status Put(std::string_view k, std::string_view d) override { return s_->Put(k, d); }
  absl::Status Delete(std::string_view k) override { return s_->Delete(k); }
  absl::StatusOr<blockstore::ObjectInfo> Head(std::string_view k) override { return s_->Head(k); }
  absl::StatusOr<blockstore::ListPage> List(std::string_view p, std::string_view t, int m) override { return s_->List(p, t, m); }
  absl::Status Check() override { return s_->Check(); }
  std::string Describe() const override { return s_->Describe(); }
 private:
  blockstore::BlockStore* s_;
};

// Forwards to the metadata service and counts the calls of each method; the next calls of one
// method can be made to fail with an errno (ESTALE: the server reclaimed block ids; EIO:
// unreachable).
class FaultyMeta : public MetaApi {
 public:
  explicit FaultyMeta(MetaApi* m) : m_(m) {}
  void FailNext(const std::string& method, int err, int count) {
    absl::MutexLock l(&mu_);
    method_ = method;
    err_ = err;
    count_ = count;
  }
  // Calls of `method` so far (failed ones too), and of all methods.
  int Calls(const std::string& method) {
    absl::MutexLock l(&mu_);
    auto it = calls_.find(method);
    return it == calls_.end() ? 0 : it->second;
  }
  int AllCalls() {
    absl::MutexLock l(&mu_);
    int n = 0;
    for (const auto& [m, c] : calls_) n += c;
    return n;
  }
#define NIGHFS_FORWARD_META(M, Req, Resp)                                \
  absl::StatusOr<pb::Resp> M(const pb::Req& r) override {                \
    if (int err = Fault(#M); err != 0) return PosixError(err, "injected"); \
    return m_->M(r);                                                     \
  }
  NIGHFS_META_METHODS(NIGHFS_FORWARD_META)
#undef NIGHFS_FORWARD_META

 private:
  int Fault(const char* method) {
    absl::MutexLock l(&mu_);
    calls_[method] += 1;
    if (count_ == 0 || method_ != method) return 0;
    --count_;
    return err_;
  }
  MetaApi* const m_;
  absl::Mutex mu_;
  std::string method_ ABSL_GUARDED_BY(mu_);
  int err_ ABSL_GUARDED_BY(mu_) = 0;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
};

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = blockstore::NewMemoryStore();
    faulty_ = std::make_unique<FaultInjectingStore>(std::make_unique<Forwarder>(store_.get()));
    meta::MetaServiceOptions mo;
    mo.db_path = dir_.path() + "/meta.db";
    mo.run_background = false;
    mo.gc_grace = absl::ZeroDuration();
    mo.allow_test_stores = true;
    mo.open_store = [this](const std::string&) -> absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> {
      return std::unique_ptr<blockstore::BlockStore>(new Forwarder(store_.get()));
    };
    auto m = meta::MetaService::Open(mo);
    ASSERT_OK(m);
    meta_ = std::move(*m);
    pb::CreateVolumeRequest cv;
    cv.set_name("v");
    cv.set_block_size(kBs);
    cv.set_store_url("mem://fs-test");
    ASSERT_OK(meta_->CreateVolume(cv));
    fs_ = NewMount();
  }

  // `api` and `store` replace the fixture's (faulty_meta_ if set, else meta_; faulty_).
  std::unique_ptr<FileSystem> NewMount(FsOptions opts = {}, MetaApi* api = nullptr,
                                       blockstore::BlockStore* store = nullptr) {
    pb::MountRequest mr;
    mr.set_volume_name("v");
    auto r = meta_->Mount(mr);
    EXPECT_OK(r);
    volume_id_ = r->volume().id();
    opts.io_threads = 4;
    // As mount.nighfs does: small files inline up to the server's limit unless opts say less.
    opts.inline_max_bytes = ResolveInlineMax(opts.inline_max_bytes, r->inline_max_bytes());
    opts.sync_names_at_fsync |= r->namespace_sync_ms() > 0;
    if (api == nullptr) {
      api = faulty_meta_ != nullptr ? static_cast<MetaApi*>(faulty_meta_.get()) : meta_.get();
    }
    if (store == nullptr) store = faulty_.get();
    auto fs = FileSystem::Create(api, store, r->volume(), r->session_id(), opts);
    EXPECT_OK(fs);
    return std::move(*fs);
  }

  // From here on fs_ and NewMount() go through faulty_meta_, which counts every call.
  void CountMetaCalls() {
    faulty_meta_ = std::make_unique<FaultyMeta>(meta_.get());
    fs_ = NewMount();
  }

  // The attributes as the server has them now (not through any mount).
  pb::Attr ServerAttr(uint64_t ino) {
    pb::GetAttrRequest req;
    req.set_volume_id(volume_id_);
    req.mutable_caller()->set_uid(0);
    req.set_ino(ino);
    auto r = meta_->GetAttr(req);
    EXPECT_OK(r);
    return r.ok() ? r->attr() : pb::Attr();
  }

  size_t ObjectCount() {
    auto page = store_->List("", "", 100000);
    EXPECT_OK(page);
    return page.ok() ? page->objects.size() : 0;
  }

  std::string ReadAll(FileSystem* fs, uint64_t ino) {
    auto fh = fs->Open(ino, O_RDONLY);
    EXPECT_OK(fh);
    std::string out;
    for (uint64_t off = 0;;) {
      auto chunk = fs->Read(*fh, off, 100000);
      EXPECT_OK(chunk);
      if (!chunk.ok() || chunk->empty()) break;
      out += *chunk;
      off += chunk->size();
    }
    EXPECT_OK(fs->Release(*fh));
    return out;
  }

  // Writes `data` to a new file `name` through a mount of its own with `opts`; its inode.
  uint64_t WriteThrough(FsOptions opts, const std::string& name, const std::string& data) {
    auto writer = NewMount(opts);
    auto made = writer->Create(kRoot, 1, name, 0644, O_RDWR);
    EXPECT_OK(made);
    if (!made.ok()) return 0;
    EXPECT_OK(writer->Write(made->second, 0, data));
    EXPECT_OK(writer->Release(made->second));
    return made->first.ino();
  }

  TempDir dir_;
  uint64_t volume_id_ = 0;
  std::unique_ptr<blockstore::BlockStore> store_;
  std::unique_ptr<FaultInjectingStore> faulty_;
  std::unique_ptr<meta::MetaService> meta_;
  std::unique_ptr<FaultyMeta> faulty_meta_;  // declared after meta_: destroyed before it
  std::unique_ptr<FileSystem> fs_;
};

}  // namespace nighfs::fs

#endif  // NIGHFS_TESTS_MOUNT_FS_FIXTURE_H_
