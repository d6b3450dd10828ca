// Small files kept inline in the block map (issue 14, "data on MDT"): the file-system logic
// against the in-process metadata service (default limit 4096 bytes) and the fault-injecting
// memory store, whose call counts show which operations reached the store.
#include <fcntl.h>

#include <cerrno>
#include <string>

#include "common/crc32c.h"
#include "mount/block_cache.h"
#include "mount/filesystem.h"
#include "tests/mount/fs_fixture.h"

namespace nighfs::fs {
namespace {

using Op = FaultInjectingStore::Op;

constexpr uint32_t kServerLimit = 4096;

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7 + i / 251);
  return s;
}

class FsInlineTest : public FsTest {
 protected:
  int Puts() { return faulty_->calls(Op::kPut); }
  int Gets() { return faulty_->calls(Op::kGet); }

  // The file's committed block map, as the server keeps it.
  pb::GetBlocksResponse Blocks(uint64_t ino) {
    pb::GetBlocksRequest r;
    r.set_volume_id(volume_id_);
    r.set_ino(ino);
    auto got = meta_->GetBlocks(r);
    EXPECT_OK(got);
    return got.ok() ? *got : pb::GetBlocksResponse();
  }

  // Opens `ino` read-write, writes `data` at `off`, closes.
  void WriteAt(FileSystem* fs, uint64_t ino, uint64_t off, const std::string& data) {
    auto fh = fs->Open(ino, O_RDWR);
    ASSERT_OK(fh);
    ASSERT_OK(fs->Write(*fh, off, data));
    ASSERT_OK(fs->Release(*fh));
  }

  void Truncate(FileSystem* fs, uint64_t ino, uint64_t size) {
    SetAttrArgs a;
    a.valid = pb::SETATTR_SIZE;
    a.size = size;
    ASSERT_OK(fs->SetAttr(ino, a));
  }

  // Through a new mount behind faulty_meta_: creates "f", writes `data`, makes the next
  // CommitBlocks fail with `err` and closes, which must succeed anyway. The file's inode.
  uint64_t CloseAfterCommitFault(int err, const std::string& data) {
    faulty_meta_ = std::make_unique<FaultyMeta>(meta_.get());
    fs_ = NewMount();
    auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
    EXPECT_OK(made);
    if (!made.ok()) return 0;
    EXPECT_OK(fs_->Write(made->second, 0, data));
    faulty_meta_->FailNext("CommitBlocks", err, 1);
    EXPECT_OK(fs_->Release(made->second));
    return made->first.ino();
  }

  // What a fresh mount (no cached blocks) reads of `ino`.
  std::string ReadCold(uint64_t ino) {
    auto reader = NewMount();
    return ReadAll(reader.get(), ino);
  }
};

TEST_F(FsInlineTest, SmallFileCostsNoStoreCalls) {
  const std::string data = Pattern(1000, 'a');
  const uint64_t ino = WriteThrough({}, "small", data);
  EXPECT_EQ(Puts(), 0) << "create, write, close of a small file PUTs nothing";
  EXPECT_EQ(ObjectCount(), 0u);
  pb::GetBlocksResponse map = Blocks(ino);
  ASSERT_EQ(map.blocks_size(), 1);
  EXPECT_EQ(map.blocks(0).id(), 0u);
  EXPECT_EQ(map.blocks(0).inline_data(), data);
  EXPECT_EQ(map.blocks(0).crc32c(), Crc32c(data));
  EXPECT_EQ(map.attr().size(), data.size());

  EXPECT_EQ(ReadCold(ino), data);
  EXPECT_EQ(Gets(), 0) << "a cold read is served from the block map";
  // The largest inline file, and a file at the limit + 1 byte: that one is an object.
  const uint64_t at = WriteThrough({}, "at", Pattern(kServerLimit, 'b'));
  EXPECT_EQ(Puts(), 0);
  const uint64_t over = WriteThrough({}, "over", Pattern(kServerLimit + 1, 'c'));
  EXPECT_EQ(Puts(), 1);
  EXPECT_EQ(Blocks(at).blocks(0).id(), 0u);
  EXPECT_NE(Blocks(over).blocks(0).id(), 0u);
  EXPECT_EQ(ReadCold(at), Pattern(kServerLimit, 'b'));
  EXPECT_EQ(ReadCold(over), Pattern(kServerLimit + 1, 'c'));
}

TEST_F(FsInlineTest, InlineMaxZeroDisablesIt) {
  FsOptions off;
  off.inline_max_bytes = 0;
  const uint64_t ino = WriteThrough(off, "f", "tiny");
  EXPECT_EQ(Puts(), 1);
  EXPECT_NE(Blocks(ino).blocks(0).id(), 0u);
  // A limit under the server's is honoured too.
  FsOptions low;
  low.inline_max_bytes = 100;
  WriteThrough(low, "g", Pattern(101, 'g'));
  EXPECT_EQ(Puts(), 2);
  WriteThrough(low, "h", Pattern(100, 'h'));
  EXPECT_EQ(Puts(), 2);
  // One above the server's is cut to it (the server would refuse the commit).
  FsOptions high;
  high.inline_max_bytes = kServerLimit * 4;
  const uint64_t big = WriteThrough(high, "big", Pattern(kServerLimit + 10, 'i'));
  EXPECT_EQ(Puts(), 3);
  EXPECT_EQ(ReadCold(big), Pattern(kServerLimit + 10, 'i'));
}

// The file grows past the limit: block 0 becomes an object, its old bytes taken from the
// inline block (read-modify-write without a GET); later cut small and rewritten, it is inline
// again and the server's garbage collection deletes the object.
TEST_F(FsInlineTest, GrowingPastTheLimitAndBack) {
  std::string model = Pattern(3000, 'a');
  const uint64_t ino = WriteThrough({}, "f", model);
  const std::string tail = Pattern(3000, 'z');
  WriteAt(fs_.get(), ino, 3000, tail);
  model += tail;
  EXPECT_EQ(Puts(), 1);
  EXPECT_EQ(Gets(), 0) << "the base of the append came from the inline bytes";
  pb::GetBlocksResponse map = Blocks(ino);
  ASSERT_EQ(map.blocks_size(), 1);
  EXPECT_NE(map.blocks(0).id(), 0u);
  EXPECT_EQ(map.blocks(0).inline_data(), "");
  EXPECT_EQ(ObjectCount(), 1u);
  EXPECT_EQ(ReadCold(ino), model);

  Truncate(fs_.get(), ino, 100);
  model.resize(100);
  WriteAt(fs_.get(), ino, 50, "rewritten");
  model.replace(50, 9, "rewritten");
  EXPECT_EQ(Puts(), 1);
  map = Blocks(ino);
  ASSERT_EQ(map.blocks_size(), 1);
  EXPECT_EQ(map.blocks(0).id(), 0u);
  EXPECT_EQ(map.blocks(0).inline_data(), model);
  ASSERT_OK(meta_->RunGcOnce());
  EXPECT_EQ(ObjectCount(), 0u) << "the object the inline block replaced is collected";
  EXPECT_EQ(ReadCold(ino), model);
}

// Truncation (down and up), appends and overwrites of inline files, byte for byte against a
// model, each step read back through a fresh mount.
TEST_F(FsInlineTest, TruncateAppendOverwriteAreByteExact) {
  std::string model = Pattern(2000, 'm');
  const uint64_t ino = WriteThrough({}, "f", model);
  auto check = [&](const char* step) {
    EXPECT_EQ(ReadCold(ino), model) << step;
    EXPECT_EQ(ReadAll(fs_.get(), ino), model) << step << " (the writing mount)";
  };
  WriteAt(fs_.get(), ino, 10, "overwrite");
  model.replace(10, 9, "overwrite");
  check("overwrite");
  Truncate(fs_.get(), ino, 700);
  model.resize(700);
  check("truncate down");
  {
    auto fh = fs_->Open(ino, O_WRONLY | O_APPEND);
    ASSERT_OK(fh);
    ASSERT_OK(fs_->Write(*fh, 0, "appended"));
    ASSERT_OK(fs_->Release(*fh));
    model += "appended";
  }
  check("append");
  Truncate(fs_.get(), ino, 3000);
  model.resize(3000, '\0');
  check("truncate up: a hole past the inline bytes");
  WriteAt(fs_.get(), ino, 2990, "end");
  model.replace(2990, 3, "end");
  check("write into the hole");
  Truncate(fs_.get(), ino, 0);
  model.clear();
  check("truncate to 0");
  WriteAt(fs_.get(), ino, 0, "fresh");
  model = "fresh";
  check("rewrite");
  EXPECT_EQ(Puts(), 0);
  EXPECT_EQ(Gets(), 0);
  EXPECT_EQ(Blocks(ino).blocks(0).inline_data(), "fresh");
}

// An inline commit that fails is kept and retried like any other: close reports EIO, the
// data stays readable, the retrier commits it, and no PUT is ever made for it.
TEST_F(FsInlineTest, FailedInlineCommitIsKeptAndRetried) {
  faulty_meta_ = std::make_unique<FaultyMeta>(meta_.get());
  FsOptions quick;
  quick.retry_initial_backoff = absl::Milliseconds(10);
  quick.retry_max_backoff = absl::Milliseconds(50);
  fs_ = NewMount(quick);
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_RDWR);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  const std::string data = Pattern(1500, 'r');
  ASSERT_OK(fs_->Write(made->second, 0, data));
  faulty_meta_->FailNext("CommitBlocks", EIO, 3);
  EXPECT_EQ(StatusToErrno(fs_->Release(made->second)), EIO);
  {
    // Kept in the mount meanwhile; every close reports the error until the data is stored.
    auto fh = fs_->Open(ino, O_RDONLY);
    ASSERT_OK(fh);
    auto got = fs_->Read(*fh, 0, 10000);
    ASSERT_OK(got);
    EXPECT_EQ(*got, data);
    EXPECT_EQ(StatusToErrno(fs_->Release(*fh)), EIO);
  }
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        status::v1::MountStats s;
        fs_->FillStats(&s);
        return s.pending_files() == 0;
      },
      absl::Seconds(10)));
  EXPECT_EQ(Puts(), 0);
  EXPECT_EQ(Blocks(ino).blocks(0).inline_data(), data);
  EXPECT_EQ(ReadCold(ino), data);
}

// ESTALE (ids reclaimed) makes the mount store its objects again under fresh ids; an inline
// block has no id and goes into the repeated commit as it is.
TEST_F(FsInlineTest, EstaleCommitKeepsTheInlineBlock) {
  const uint64_t ino = CloseAfterCommitFault(ESTALE, "stale or not");
  EXPECT_EQ(Puts(), 0);
  EXPECT_EQ(faulty_meta_->Calls("CommitBlocks"), 2);
  EXPECT_EQ(Blocks(ino).blocks(0).inline_data(), "stale or not");
}

// A server that refuses inline blocks after the mount learnt its limit (restarted with a lower
// --inline-max-bytes): the refused commit is made again with the block stored as an object,
// close succeeds, and later small files go to the store.
TEST_F(FsInlineTest, RefusedInlineBlocksAreStoredAsObjects) {
  const uint64_t ino = CloseAfterCommitFault(EINVAL, "refused inline");
  EXPECT_EQ(Puts(), 1);
  EXPECT_EQ(faulty_meta_->Calls("CommitBlocks"), 2);
  EXPECT_NE(Blocks(ino).blocks(0).id(), 0u);
  EXPECT_EQ(ReadCold(ino), "refused inline");
  auto next = fs_->Create(kRoot, 1, "g", 0644, O_RDWR);
  ASSERT_OK(next);
  ASSERT_OK(fs_->Write(next->second, 0, "after"));
  ASSERT_OK(fs_->Release(next->second));
  EXPECT_EQ(Puts(), 2) << "inlining stopped for this mount";
  EXPECT_EQ(faulty_meta_->Calls("CommitBlocks"), 3);
}

// An inline block whose bytes do not match its CRC is never returned (EIO).
TEST_F(FsInlineTest, CorruptInlineBytesAreNeverReturned) {
  const uint64_t ino = WriteThrough({}, "f", "good bytes");
  pb::GetBlocksResponse map = Blocks(ino);
  ASSERT_EQ(map.blocks_size(), 1);
  pb::Block bad = map.blocks(0);
  bad.set_inline_data("evil bytes");
  BlockCache cache(faulty_.get(), 1 << 20, nullptr);
  char out[10];
  EXPECT_EQ(cache.Read(bad, 0, sizeof out, out, {}).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(cache.Get(bad).status().code(), absl::StatusCode::kDataLoss);
  ASSERT_OK(cache.Read(map.blocks(0), 0, sizeof out, out, {}));
  EXPECT_EQ(std::string(out, sizeof out), "good bytes");
  EXPECT_EQ(Gets(), 0);
}

}  // namespace
}  // namespace nighfs::fs
