// Drives the file-system logic (no FUSE) against an in-process metadata service and an
// in-memory block store: reference-model tests, close-to-open between two "mounts", and faults.
#include "mount/filesystem.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>
#include <random>
#include <string>

#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "common/errno_status.h"
#include "gtest/gtest.h"
#include "meta/meta_service.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::fs {
namespace {

namespace pb = ::nighfs::meta::v1;
using blockstore::FaultInjectingStore;
using testing::TempDir;

constexpr uint32_t kBs = 64 << 10;
constexpr Caller kRoot{0, 0};

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

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

  std::unique_ptr<FileSystem> NewMount(FsOptions opts = {}) {
    pb::MountRequest mr;
    mr.set_volume_name("v");
    auto r = meta_->Mount(mr);
    EXPECT_OK(r);
    opts.io_threads = 4;
    auto fs = FileSystem::Create(meta_.get(), faulty_.get(), r->volume(), r->session_id(), opts);
    EXPECT_OK(fs);
    return std::move(*fs);
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

  TempDir dir_;
  std::unique_ptr<blockstore::BlockStore> store_;
  std::unique_ptr<FaultInjectingStore> faulty_;
  std::unique_ptr<meta::MetaService> meta_;
  std::unique_ptr<FileSystem> fs_;
};

TEST_F(FsTest, RandomOperationsMatchModel) {
  auto made = fs_->Create(kRoot, 1, "model", 0644, O_RDWR);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  uint64_t fh = made->second;
  std::string model;
  std::mt19937 rng(7);
  for (int i = 0; i < 1500; ++i) {
    const int op = rng() % 20;
    if (op < 12) {
      const uint64_t off = rng() % (12 * kBs);
      const std::string data = Bytes(1 + rng() % (op == 0 ? 3 * kBs : 3000), i);
      ASSERT_OK(fs_->Write(fh, off, data));
      if (model.size() < off + data.size()) model.resize(off + data.size(), '\0');
      model.replace(off, data.size(), data);
    } else if (op < 15) {
      const uint64_t off = rng() % (model.size() + 10);
      const size_t n = 1 + rng() % (2 * kBs);
      auto got = fs_->Read(fh, off, n);
      ASSERT_OK(got);
      const std::string want = off >= model.size() ? "" : model.substr(off, n);
      ASSERT_TRUE(*got == want) << "read at " << off << " len " << n << " step " << i;
    } else if (op < 17) {
      const uint64_t size = rng() % (10 * kBs);
      SetAttrArgs a;
      a.valid = pb::SETATTR_SIZE;
      a.size = size;
      auto attr = fs_->SetAttr(ino, a);
      ASSERT_OK(attr);
      EXPECT_EQ(attr->size(), size);
      model.resize(size, '\0');
    } else if (op < 19) {
      ASSERT_OK(fs_->Flush(fh));
    } else {
      // Close and reopen: everything must come back from the server and the store.
      ASSERT_OK(fs_->Release(fh));
      auto again = fs_->Open(ino, O_RDWR);
      ASSERT_OK(again);
      fh = *again;
    }
    auto attr = fs_->GetAttr(ino);
    ASSERT_OK(attr);
    ASSERT_EQ(attr->size(), model.size()) << "step " << i;
  }
  ASSERT_OK(fs_->Release(fh));
  EXPECT_TRUE(ReadAll(fs_.get(), ino) == model);
  auto other = NewMount();
  EXPECT_TRUE(ReadAll(other.get(), ino) == model);
}

TEST_F(FsTest, CloseToOpenBetweenMounts) {
  auto other = NewMount();
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  ASSERT_OK(fs_->Write(made->second, 0, "version one"));
  ASSERT_OK(fs_->Release(made->second));
  EXPECT_EQ(ReadAll(other.get(), made->first.ino()), "version one");
  auto fh = other->Open(made->first.ino(), O_WRONLY);
  ASSERT_OK(fh);
  ASSERT_OK(other->Write(*fh, 8, "TWO!"));
  ASSERT_OK(other->Release(*fh));
  EXPECT_EQ(ReadAll(fs_.get(), made->first.ino()), "version TWO!");
}

TEST_F(FsTest, FailedUploadKeepsDataAndReportsEio) {
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  const std::string data = Bytes(3 * kBs + 10, 1);
  faulty_->FailNext(FaultInjectingStore::Op::kPut, absl::UnavailableError("injected"), 100);
  ASSERT_OK(fs_->Write(made->second, 0, data));
  absl::Status s = fs_->Flush(made->second);
  EXPECT_EQ(StatusToErrno(s), EIO) << s;
  // Nothing is lost: the data is still readable and a later flush stores it.
  auto got = fs_->Read(made->second, 0, data.size());
  ASSERT_OK(got);
  EXPECT_TRUE(*got == data);
  faulty_->ClearFaults();
  ASSERT_OK(fs_->Flush(made->second));
  ASSERT_OK(fs_->Release(made->second));
  auto other = NewMount();
  EXPECT_TRUE(ReadAll(other.get(), made->first.ino()) == data);
}

TEST_F(FsTest, CorruptBlockIsNeverReturned) {
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  ASSERT_OK(fs_->Write(made->second, 0, Bytes(kBs, 2)));
  ASSERT_OK(fs_->Release(made->second));
  auto other = NewMount();  // empty cache
  faulty_->CorruptNextGet(100);
  auto fh = other->Open(made->first.ino(), O_RDONLY);
  ASSERT_OK(fh);
  auto got = other->Read(*fh, 0, 100);
  EXPECT_FALSE(got.ok());
  EXPECT_EQ(StatusToErrno(got.status()), EIO);
  faulty_->ClearFaults();
  // One corrupt read, then a good one: the retry inside the cache recovers.
  faulty_->CorruptNextGet(1);
  got = other->Read(*fh, 0, 100);
  ASSERT_OK(got);
  EXPECT_TRUE(*got == Bytes(kBs, 2).substr(0, 100));
  ASSERT_OK(other->Release(*fh));
}

TEST_F(FsTest, UnlinkWhileOpenIsSustained) {
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  ASSERT_OK(fs_->Write(made->second, 0, Bytes(2 * kBs, 3)));
  ASSERT_OK(fs_->Flush(made->second));
  ASSERT_OK(fs_->Unlink(1, "f"));
  ASSERT_OK(meta_->RunGcOnce());
  EXPECT_EQ(ObjectCount(), 2u);
  auto got = fs_->Read(made->second, 0, 2 * kBs);
  ASSERT_OK(got);
  EXPECT_TRUE(*got == Bytes(2 * kBs, 3));
  ASSERT_OK(fs_->Release(made->second));
  ASSERT_OK(meta_->RunGcOnce());
  EXPECT_EQ(ObjectCount(), 0u);
}

TEST_F(FsTest, AppendWritesAtEnd) {
  auto made = fs_->Create(kRoot, 1, "log", 0644, O_WRONLY);
  ASSERT_OK(made);
  ASSERT_OK(fs_->Write(made->second, 0, "one\n"));
  ASSERT_OK(fs_->Release(made->second));
  auto fh = fs_->Open(made->first.ino(), O_WRONLY | O_APPEND);
  ASSERT_OK(fh);
  ASSERT_OK(fs_->Write(*fh, 0, "two\n"));
  ASSERT_OK(fs_->Release(*fh));
  EXPECT_EQ(ReadAll(fs_.get(), made->first.ino()), "one\ntwo\n");
}

TEST_F(FsTest, NameTooLong) {
  auto r = fs_->Mkdir(kRoot, 1, std::string(256, 'x'), 0755);
  EXPECT_EQ(StatusToErrno(r.status()), ENAMETOOLONG);
  r = fs_->Mkdir(kRoot, 1, std::string(255, 'x'), 0755);
  EXPECT_OK(r);
}

TEST_F(FsTest, ReadDirOffsetsAreStable) {
  for (int i = 0; i < 50; ++i) ASSERT_OK(fs_->Mknod(kRoot, 1, "n" + std::to_string(i), S_IFREG | 0644, 0));
  auto first = fs_->ReadDir(1, 0, 12, false);
  ASSERT_OK(first);
  ASSERT_EQ(first->size(), 12u);
  EXPECT_EQ((*first)[0].name, ".");
  EXPECT_EQ((*first)[1].name, "..");
  // Remove an entry already listed: the rest continues from the saved offset, no repeats.
  ASSERT_OK(fs_->Unlink(1, (*first)[5].name));
  std::set<std::string> seen;
  for (size_t i = 2; i < first->size(); ++i) seen.insert((*first)[i].name);
  uint64_t off = first->back().next_offset;
  while (true) {
    auto more = fs_->ReadDir(1, off, 7, true);
    ASSERT_OK(more);
    if (more->empty()) break;
    for (auto& e : *more) {
      EXPECT_TRUE(seen.insert(e.name).second) << e.name;
      EXPECT_EQ(e.attr.ino(), e.ino);
    }
    off = more->back().next_offset;
  }
  EXPECT_EQ(seen.size(), 50u);
}

}  // namespace
}  // namespace nighfs::fs
