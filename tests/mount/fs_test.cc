// Drives the file-system logic (no FUSE) against an in-process metadata service and an
// in-memory block store: reference-model tests, close-to-open between two "mounts", and faults.
#include "mount/filesystem.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/mount/fs_fixture.h"

namespace nighfs::fs {
namespace {

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

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

// Fast background retries for the tests below.
FsOptions QuickRetry() {
  FsOptions o;
  o.retry_initial_backoff = absl::Milliseconds(10);
  o.retry_max_backoff = absl::Milliseconds(50);
  o.flush_timeout = absl::Seconds(20);
  return o;
}

status::v1::MountStats Stats(const FileSystem& fs) {
  status::v1::MountStats s;
  fs.FillStats(&s);
  return s;
}

// Issue 10, item 1: a close that returned EIO used to drop the file's data (0 bytes once the
// store came back). It is kept, readable by a new open, reported again by later closes, and
// stored by the background retrier once the store is back.
TEST_F(FsTest, FailedCloseKeepsDataAndRetrierStoresIt) {
  fs_ = NewMount(QuickRetry());
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  const std::string data = Bytes(3 * kBs + 10, 11);
  faulty_->FailNext(FaultInjectingStore::Op::kPut, absl::UnavailableError("store down"), 1 << 30);
  ASSERT_OK(fs_->Write(made->second, 0, data));
  EXPECT_EQ(StatusToErrno(fs_->Release(made->second)), EIO);

  status::v1::MountStats st = Stats(*fs_);
  EXPECT_EQ(st.pending_files(), 1u);
  EXPECT_EQ(st.pending_bytes(), data.size());
  EXPECT_EQ(st.dirty_bytes(), data.size());
  status::v1::MountStatus full;
  fs_->FillMemoryAndPending(&full);
  ASSERT_EQ(full.pending_size(), 1);
  EXPECT_EQ(full.pending(0).ino(), ino);
  EXPECT_GT(full.pending(0).attempts(), 0u);
  EXPECT_GT(full.pending(0).since_ns(), 0);
  EXPECT_NE(full.pending(0).last_error().find("store down"), std::string::npos);
  EXPECT_EQ(full.memory().dirty_bytes(), data.size());
  EXPECT_GT(full.memory().rss_bytes(), 0u);

  // A new open sees the kept data; its close reports the write error again.
  auto fh = fs_->Open(ino, O_RDWR);
  ASSERT_OK(fh);
  auto got = fs_->Read(*fh, 0, data.size());
  ASSERT_OK(got);
  EXPECT_TRUE(*got == data);
  EXPECT_EQ(StatusToErrno(fs_->Fsync(*fh)), EIO);
  EXPECT_EQ(StatusToErrno(fs_->Release(*fh)), EIO);

  faulty_->ClearFaults();
  ASSERT_TRUE(testing::WaitFor([&] { return Stats(*fs_).pending_files() == 0; },
                               absl::Seconds(10)));
  EXPECT_EQ(Stats(*fs_).dirty_bytes(), 0u);
  auto other = NewMount();
  EXPECT_TRUE(ReadAll(other.get(), ino) == data);
  // Stored: a later open and fsync succeed.
  fh = fs_->Open(ino, O_RDWR);
  ASSERT_OK(fh);
  EXPECT_OK(fs_->Fsync(*fh));
  EXPECT_OK(fs_->Release(*fh));
}

// Issue 10, item 2: every byte counted dirty is uncounted exactly once, whatever fails.
TEST_F(FsTest, DirtyCountReturnsToZeroAfterFailures) {
  fs_ = NewMount(QuickRetry());
  std::mt19937 rng(5);
  std::vector<std::pair<uint64_t, std::string>> files;
  for (int f = 0; f < 6; ++f) {
    auto made = fs_->Create(kRoot, 1, "f" + std::to_string(f), 0644, O_RDWR);
    ASSERT_OK(made);
    std::string model;
    for (int i = 0; i < 30; ++i) {
      switch (rng() % 6) {
        case 0:
          faulty_->FailNext(FaultInjectingStore::Op::kPut, absl::UnavailableError("x"),
                            1 + rng() % 3);
          break;
        case 1:
          faulty_->FailNextAfterApplying(FaultInjectingStore::Op::kPut,
                                         absl::DeadlineExceededError("lost reply"), 1);
          break;
        case 2: {
          SetAttrArgs a;
          a.valid = pb::SETATTR_SIZE;
          a.size = rng() % (4 * kBs);
          if (fs_->SetAttr(made->first.ino(), a).ok()) model.resize(a.size, '\0');
          break;
        }
        default: {
          const uint64_t off = rng() % (4 * kBs);
          const std::string d = Bytes(1 + rng() % (2 * kBs), f * 100 + i);
          ASSERT_OK(fs_->Write(made->second, off, d));
          if (model.size() < off + d.size()) model.resize(off + d.size(), '\0');
          model.replace(off, d.size(), d);
        }
      }
      if (rng() % 5 == 0) (void)fs_->Flush(made->second);  // may fail: injected
    }
    (void)fs_->Release(made->second);  // may fail: kept and retried
    files.emplace_back(made->first.ino(), model);
  }
  faulty_->ClearFaults();
  ASSERT_OK(fs_->FlushAll());
  EXPECT_EQ(Stats(*fs_).dirty_bytes(), 0u);
  EXPECT_EQ(Stats(*fs_).pending_files(), 0u);
  auto other = NewMount();
  for (const auto& [ino, model] : files) EXPECT_TRUE(ReadAll(other.get(), ino) == model) << ino;
  fs_.reset();  // debug builds check the count against the live buffers here
}

// Unmount waits for kept data while the store is down, and lands it once it is back.
TEST_F(FsTest, UnmountWaitsForKeptData) {
  fs_ = NewMount(QuickRetry());
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  const std::string data = Bytes(2 * kBs + 3, 12);
  faulty_->FailNext(FaultInjectingStore::Op::kPut, absl::UnavailableError("down"), 1 << 30);
  ASSERT_OK(fs_->Write(made->second, 0, data));
  EXPECT_EQ(StatusToErrno(fs_->Release(made->second)), EIO);
  std::thread back([&] {
    absl::SleepFor(absl::Milliseconds(500));
    faulty_->ClearFaults();
  });
  const absl::Time start = absl::Now();
  absl::Status s = fs_->FlushAll();
  back.join();
  ASSERT_OK(s);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(400));
  fs_.reset();
  auto other = NewMount();
  EXPECT_TRUE(ReadAll(other.get(), made->first.ino()) == data);
}

// ... and gives up at -o flush_timeout, saying what is lost.
TEST_F(FsTest, UnmountGivesUpAtFlushTimeout) {
  FsOptions o = QuickRetry();
  o.flush_timeout = absl::Milliseconds(300);
  fs_ = NewMount(o);
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  faulty_->FailNext(FaultInjectingStore::Op::kPut, absl::UnavailableError("down"), 1 << 30);
  ASSERT_OK(fs_->Write(made->second, 0, Bytes(kBs + 1, 13)));
  EXPECT_EQ(StatusToErrno(fs_->Release(made->second)), EIO);
  const absl::Time start = absl::Now();
  absl::Status s = fs_->FlushAll();
  EXPECT_EQ(StatusToErrno(s), EIO);
  EXPECT_NE(s.message().find("1 file(s)"), std::string::npos) << s;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  faulty_->ClearFaults();
}

// Kept data beyond 3/4 of the writeback budget moves to the spill folder (0700, files 0600),
// stays readable, and the files go once the data is stored.
TEST_F(FsTest, KeptDataSpillsToDiskAndIsStoredLater) {
  FsOptions o = QuickRetry();
  o.writeback_bytes = 16 * kBs;
  o.spill_dir = dir_.path() + "/spill";
  fs_ = NewMount(o);
  faulty_->FailNext(FaultInjectingStore::Op::kPut, absl::UnavailableError("down"), 1 << 30);
  std::vector<std::pair<uint64_t, std::string>> files;
  for (int f = 0; f < 5; ++f) {  // 5 x 3 blocks: over 3/4 of the budget, under all of it
    auto made = fs_->Create(kRoot, 1, "s" + std::to_string(f), 0644, O_RDWR);
    ASSERT_OK(made);
    const std::string data = Bytes(3 * kBs + 7, 20 + f);
    ASSERT_OK(fs_->Write(made->second, 0, data));
    EXPECT_EQ(StatusToErrno(fs_->Release(made->second)), EIO);
    files.emplace_back(made->first.ino(), data);
  }
  auto spilled = [&] {
    status::v1::MountStatus s;
    fs_->FillMemoryAndPending(&s);
    return s.memory().spilled_bytes();
  };
  // Spilling goes block by block: wait until it has brought memory under the high mark.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return spilled() > 0 && Stats(*fs_).dirty_bytes() <= o.writeback_bytes / 4 * 3; },
      absl::Seconds(10)))
      << "dirty " << Stats(*fs_).dirty_bytes() << ", spilled " << spilled();
  struct stat st;
  ASSERT_EQ(::stat(o.spill_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(o.spill_dir)) {
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << e.path();
    ++n;
  }
  EXPECT_GT(n, 0);
  // Reads of spilled blocks read them back from disk; so does a partial overwrite, whose
  // close still reports the write error (the store is down).
  for (auto& [ino, data] : files) {
    auto fh = fs_->Open(ino, O_RDWR);
    ASSERT_OK(fh);
    auto got = fs_->Read(*fh, 0, data.size());
    ASSERT_OK(got);
    EXPECT_TRUE(*got == data) << ino;
    ASSERT_OK(fs_->Write(*fh, kBs + 5, "patched"));
    data.replace(kBs + 5, 7, "patched");
    EXPECT_EQ(StatusToErrno(fs_->Release(*fh)), EIO);
  }
  faulty_->ClearFaults();
  ASSERT_TRUE(testing::WaitFor([&] { return Stats(*fs_).pending_files() == 0; },
                               absl::Seconds(10)));
  EXPECT_EQ(Stats(*fs_).dirty_bytes(), 0u);
  EXPECT_EQ(spilled(), 0u);
  EXPECT_TRUE(std::filesystem::is_empty(o.spill_dir));
  auto other = NewMount();
  for (const auto& [ino, data] : files) EXPECT_TRUE(ReadAll(other.get(), ino) == data) << ino;
}

// The metadata server answers ESTALE when the ids of uploaded blocks were reclaimed (the data
// waited past its session): the images are stored again under fresh ids and committed.
TEST_F(FsTest, CommitEstaleStoresImagesAgainUnderFreshIds) {
  faulty_meta_ = std::make_unique<FaultyMeta>(meta_.get());
  fs_ = NewMount(QuickRetry());
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  const std::string data = Bytes(2 * kBs + 5, 30);
  const int puts = faulty_->calls(FaultInjectingStore::Op::kPut);
  ASSERT_OK(fs_->Write(made->second, 0, data));
  faulty_meta_->FailNext("CommitBlocks", ESTALE, 1);
  ASSERT_OK(fs_->Flush(made->second));
  // 3 blocks uploaded, then the same 3 again under new ids.
  EXPECT_EQ(faulty_->calls(FaultInjectingStore::Op::kPut) - puts, 6);
  ASSERT_OK(fs_->Release(made->second));
  auto other = NewMount();
  EXPECT_TRUE(ReadAll(other.get(), made->first.ino()) == data);
}

// Uploaded but not committed (the metadata server was unreachable at close): kept and
// committed by the retrier, with no new upload.
TEST_F(FsTest, FailedCommitOfUploadedBlocksIsRetried) {
  faulty_meta_ = std::make_unique<FaultyMeta>(meta_.get());
  fs_ = NewMount(QuickRetry());
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  const std::string data = Bytes(2 * kBs + 5, 31);
  ASSERT_OK(fs_->Write(made->second, 0, data));
  faulty_meta_->FailNext("CommitBlocks", EIO, 3);
  EXPECT_EQ(StatusToErrno(fs_->Release(made->second)), EIO);
  ASSERT_TRUE(testing::WaitFor([&] { return Stats(*fs_).pending_files() == 0; },
                               absl::Seconds(10)));
  EXPECT_EQ(Stats(*fs_).dirty_bytes(), 0u);
  EXPECT_EQ(faulty_->calls(FaultInjectingStore::Op::kPut), 3);
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

// A proxy as the mount sees it: PutAndLocate keeps the block on "its disk" (`held`, not the
// object store) and answers with the address it advertises; Get looks only in the object store,
// as a route that misses an unflushed block would.
class HoldingProxy : public Forwarder {
 public:
  HoldingProxy(blockstore::BlockStore* object_store, blockstore::BlockStore* held)
      : Forwarder(object_store), held_(held) {}
  absl::Status Put(std::string_view k, std::string_view d) override {
    return PutAndLocate(k, d).status();
  }
  absl::StatusOr<std::string> PutAndLocate(std::string_view k, std::string_view d) override {
    if (absl::Status s = held_->Put(k, d); !s.ok()) return s;
    return std::string("p1.example:7430");
  }

 private:
  blockstore::BlockStore* const held_;
};

// Forwards to the metadata service and records the holder of every block committed. The
// holders are cleared on the way: whether the server accepts one (a known proxy) is the
// server's business and its tests'; here what matters is what the mount sends.
class CommitRecorder : public MetaApi {
 public:
  explicit CommitRecorder(MetaApi* m) : m_(m) {}
  std::vector<std::string> holders() {
    absl::MutexLock l(&mu_);
    return holders_;
  }
#define NIGHFS_FORWARD_META(M, Req, Resp) \
  absl::StatusOr<pb::Resp> M(const pb::Req& r) override { return m_->M(Pass(r)); }
  NIGHFS_META_METHODS(NIGHFS_FORWARD_META)
#undef NIGHFS_FORWARD_META

 private:
  template <class Req>
  const Req& Pass(const Req& r) {
    return r;
  }
  pb::CommitBlocksRequest Pass(const pb::CommitBlocksRequest& r) {
    pb::CommitBlocksRequest copy = r;
    absl::MutexLock l(&mu_);
    for (pb::Block& b : *copy.mutable_blocks()) {
      holders_.push_back(b.holder());
      b.clear_holder();
    }
    return copy;
  }
  MetaApi* const m_;
  absl::Mutex mu_;
  std::vector<std::string> holders_ ABSL_GUARDED_BY(mu_);
};

TEST_F(FsTest, BlocksAcknowledgedByAProxyAreCommittedWithItsAddressAndReadFromIt) {
  auto held = blockstore::NewMemoryStore();
  HoldingProxy proxy(store_.get(), held.get());
  CommitRecorder recorder(meta_.get());
  std::vector<std::string> asked;
  FsOptions opts;
  opts.cache_bytes = 0;  // every read goes to the store: no copy of what this mount wrote
  opts.holder_store = [&](const std::string& holder) -> absl::StatusOr<blockstore::BlockStore*> {
    asked.push_back(holder);
    return held.get();
  };
  std::unique_ptr<FileSystem> fs = NewMount(opts, &recorder, &proxy);
  auto made = fs->Create(kRoot, 1, "through-proxy", 0644, O_RDWR);
  ASSERT_OK(made);
  const std::string data = Bytes(2 * kBs + 1000, 11);
  ASSERT_OK(fs->Write(made->second, 0, data));
  ASSERT_OK(fs->Fsync(made->second));
  EXPECT_EQ(recorder.holders(),
            std::vector<std::string>(3, "p1.example:7430"));  // 3 blocks, each with its holder
  EXPECT_EQ(ObjectCount(), 0u);  // nothing reached the object store
  auto back = fs->Read(made->second, 0, data.size());
  ASSERT_OK(back);
  EXPECT_TRUE(*back == data);
  EXPECT_FALSE(asked.empty());
  for (const std::string& a : asked) EXPECT_EQ(a, "p1.example:7430");
  ASSERT_OK(fs->Release(made->second));
}

TEST_F(FsTest, BlocksPutToTheStoreHaveNoHolder) {
  CommitRecorder recorder(meta_.get());
  std::unique_ptr<FileSystem> fs = NewMount({}, &recorder);
  auto made = fs->Create(kRoot, 1, "direct", 0644, O_RDWR);
  ASSERT_OK(made);
  ASSERT_OK(fs->Write(made->second, 0, Bytes(kBs + 1, 12)));
  ASSERT_OK(fs->Release(made->second));
  EXPECT_EQ(recorder.holders(), std::vector<std::string>(2, ""));
}

// ---- ranged reads and keep_cache (issue 14) ----

// Counts the bytes Get returns.
class ByteCounter : public Forwarder {
 public:
  using Forwarder::Forwarder;
  absl::StatusOr<std::string> Get(std::string_view k, uint64_t o, uint64_t l) override {
    absl::StatusOr<std::string> r = Forwarder::Get(k, o, l);
    if (r.ok()) bytes += r->size();
    return r;
  }
  std::atomic<uint64_t> bytes{0};
};

FsOptions Ranges(uint32_t bytes) {
  FsOptions o;
  o.range_checksum_bytes = bytes;
  return o;
}

TEST_F(FsTest, SmallRandomReadsFetchOnlyTheRangesTheyCover) {
  const std::string data = Bytes(24 * kBs, 21);
  const uint64_t ino = WriteThrough(Ranges(4096), "f", data);
  ByteCounter counter(faulty_.get());
  auto reader = NewMount({}, nullptr, &counter);  // a cold cache
  auto fh = reader->Open(ino, O_RDONLY);
  ASSERT_OK(fh);
  const uint64_t blocks[] = {20, 3, 11, 17, 6, 22, 1, 9};
  for (int i = 0; i < 8; ++i) {
    const uint64_t off = blocks[i] * kBs + (i * 5 % 16) * 4096;
    auto got = reader->Read(*fh, off, 4096);
    ASSERT_OK(got);
    ASSERT_TRUE(*got == data.substr(off, 4096)) << off;
  }
  EXPECT_EQ(counter.bytes.load(), 8u * 4096) << "one 4 KiB range a read, not whole blocks";
  // A sequential reader still reads whole blocks.
  EXPECT_TRUE(ReadAll(reader.get(), ino) == data);
  ASSERT_OK(reader->Release(*fh));
}

TEST_F(FsTest, ACorruptRangeIsFetchedAgainThenEio) {
  const std::string data = Bytes(4 * kBs, 22);
  const uint64_t ino = WriteThrough(Ranges(4096), "f", data);
  auto reader = NewMount();
  auto fh = reader->Open(ino, O_RDONLY);
  ASSERT_OK(fh);
  const int gets = faulty_->calls(FaultInjectingStore::Op::kGet);
  faulty_->CorruptNextGet(100);
  auto got = reader->Read(*fh, 3 * kBs + 100, 100);
  EXPECT_EQ(StatusToErrno(got.status()), EIO);
  EXPECT_EQ(faulty_->calls(FaultInjectingStore::Op::kGet), gets + 3) << "fetched again twice";
  faulty_->ClearFaults();
  faulty_->CorruptNextGet(1);
  got = reader->Read(*fh, 3 * kBs + 100, 100);
  ASSERT_OK(got);
  EXPECT_TRUE(*got == data.substr(3 * kBs + 100, 100));
  EXPECT_EQ(Stats(*reader).checksum_mismatches(), 4u);
  ASSERT_OK(reader->Release(*fh));
}

TEST_F(FsTest, BlocksWrittenWithoutRangeChecksumsAreReadWhole) {
  const std::string data = Bytes(4 * kBs, 23);
  const uint64_t ino = WriteThrough(Ranges(0), "old", data);
  ByteCounter counter(faulty_.get());
  auto reader = NewMount(Ranges(4096), nullptr, &counter);
  auto fh = reader->Open(ino, O_RDONLY);
  ASSERT_OK(fh);
  auto got = reader->Read(*fh, 3 * kBs + 100, 100);
  ASSERT_OK(got);
  EXPECT_TRUE(*got == data.substr(3 * kBs + 100, 100));
  EXPECT_EQ(counter.bytes.load(), kBs);
  ASSERT_OK(reader->Release(*fh));
}

// Close-to-open stays exact with keep_cache: the page cache is kept only when the open finds
// the data this mount served last (its map and size), never after another mount's change.
TEST_F(FsTest, KeepCacheOnlyWhileTheFileIsUnchanged) {
  auto other = NewMount();
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  ASSERT_OK(fs_->Write(made->second, 0, Bytes(2 * kBs, 24)));
  EXPECT_FALSE(fs_->KeepCache(made->second)) << "a new file has no page cache";
  ASSERT_OK(fs_->Release(made->second));
  auto keeps = [&](FileSystem* fs) {
    auto fh = fs->Open(ino, O_RDONLY);
    EXPECT_OK(fh);
    const bool keep = fs->KeepCache(*fh);
    EXPECT_OK(fs->Release(*fh));
    return keep;
  };
  EXPECT_TRUE(keeps(fs_.get())) << "what this mount wrote is what it would serve";
  EXPECT_TRUE(keeps(fs_.get()));
  EXPECT_FALSE(keeps(other.get())) << "never filled in the other mount";
  // Another mount's write: dropped at the next open, kept after.
  auto fh = other->Open(ino, O_WRONLY);
  ASSERT_OK(fh);
  ASSERT_OK(other->Write(*fh, 10, "x"));
  ASSERT_OK(other->Release(*fh));
  EXPECT_FALSE(keeps(fs_.get()));
  EXPECT_TRUE(keeps(fs_.get()));
  // Another mount's truncate, even back to the same size.
  SetAttrArgs a;
  a.valid = pb::SETATTR_SIZE;
  a.size = kBs / 2;
  ASSERT_OK(other->SetAttr(ino, a));
  a.size = 2 * kBs;
  ASSERT_OK(other->SetAttr(ino, a));
  EXPECT_FALSE(keeps(fs_.get()));
  // Buffered writes of this mount: not kept while they are buffered, kept once stored.
  auto w = fs_->Open(ino, O_RDWR);
  ASSERT_OK(w);
  ASSERT_OK(fs_->Write(*w, 5, "y"));
  EXPECT_FALSE(keeps(fs_.get()));
  ASSERT_OK(fs_->Release(*w));
  EXPECT_TRUE(keeps(fs_.get()));
  EXPECT_FALSE(keeps(other.get()));
}

}  // namespace
}  // namespace nighfs::fs
