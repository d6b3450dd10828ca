// Writes into stored blocks as patches (mount/block_patch.h): the patch itself against a model,
// and the file system's use of it: no read of the old block on the writer's time, one fetch
// per block when the image is sealed, bytes exact through reads, truncation and faults.

#include "mount/block_patch.h"

#include <fcntl.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/mount/fs_fixture.h"

namespace nighfs::fs {
namespace {

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Random writes and truncations of a patch against a model of the whole image and of which
// bytes were written: Build, Overlay, Pieces, length and bytes must all agree with it.
TEST(BlockPatchTest, MatchesAModelUnderRandomWritesAndTruncations) {
  constexpr uint64_t kBlock = 8192;
  for (int seed = 0; seed < 40; ++seed) {
    std::mt19937_64 rng(seed);
    const uint64_t base_len = rng() % (kBlock + 1);
    const std::string base = RandomBytes(rng, kBlock);
    meta::v1::Block ref;
    ref.set_id(7);
    ref.set_length(static_cast<uint32_t>(base_len));
    ref.set_object_size(kBlock);
    BlockPatch patch(ref, base_len);
    std::string model = base.substr(0, base_len);
    std::vector<bool> written(kBlock, false);
    for (int step = 0; step < 200; ++step) {
      if (rng() % 10 == 0) {
        const uint64_t len = rng() % (kBlock + 1);
        patch.Truncate(len);
        if (len < model.size()) model.resize(len);
        for (uint64_t i = len; i < kBlock; ++i) written[i] = false;
      } else {
        // Mostly small writes, some adjacent to the previous end, some large.
        const uint64_t off = rng() % kBlock;
        const uint64_t n = 1 + rng() % std::min<uint64_t>(kBlock - off, rng() % 4 == 0 ? 4096 : 64);
        const std::string data = RandomBytes(rng, n);
        patch.Write(off, data);
        if (model.size() < off + n) model.resize(off + n, '\0');
        model.replace(off, n, data);
        for (uint64_t i = off; i < off + n; ++i) written[i] = true;
      }
      ASSERT_EQ(patch.length(), model.size()) << "seed " << seed << " step " << step;
      uint64_t held = 0;
      for (bool w : written) held += w ? 1 : 0;
      ASSERT_EQ(patch.bytes(), held) << "seed " << seed << " step " << step;
      std::string img;
      patch.Build(base, &img);
      ASSERT_TRUE(img == model) << "seed " << seed << " step " << step;
      if (patch.CoversBase()) {
        std::string without;
        patch.Build("", &without);
        ASSERT_TRUE(without == model) << "covers the base yet needs it: seed " << seed;
      }
      // A read of a random range: the clipped base, zeros past it, the pieces on top.
      const uint64_t boff = rng() % kBlock;
      const uint64_t n = 1 + rng() % (kBlock - boff);
      std::string got(n, '\0');
      const meta::v1::Block clipped = patch.ClippedBase();
      for (uint64_t i = 0; i < n && boff + i < clipped.length(); ++i) got[i] = base[boff + i];
      for (const auto& [at, bytes] : patch.Pieces(boff, n)) got.replace(at, bytes.size(), bytes);
      std::string want = boff >= model.size() ? "" : model.substr(boff, n);
      want.resize(n, '\0');
      ASSERT_TRUE(got == want) << "read at " << boff << " seed " << seed << " step " << step;
    }
  }
}

TEST(BlockPatchTest, AppendsGrowOneExtentInPlace) {
  meta::v1::Block ref;
  ref.set_length(100);
  ref.set_object_size(100);
  BlockPatch patch(ref, 100);
  for (int i = 0; i < 1000; ++i) patch.Write(100 + i * 10, std::string(10, 'x'));
  EXPECT_EQ(patch.bytes(), 10000u);
  // What is held is what the extent allocated: its bytes, and the slack of its growth.
  // (libstdc++ doubles a growing string's capacity, so some slack is there to count.)
  EXPECT_GT(patch.held_bytes(), 10000u + BlockPatch::kExtentOverhead);
  EXPECT_LE(patch.held_bytes(), 2 * 10000u + BlockPatch::kExtentOverhead);
  EXPECT_EQ(patch.Pieces(0, 20000).size(), 1u);
  EXPECT_FALSE(patch.CoversBase());
  patch.Write(0, std::string(100, 'y'));
  EXPECT_TRUE(patch.CoversBase());
  EXPECT_EQ(patch.Pieces(0, 20000).size(), 1u);
}

class PatchFsTest : public FsTest {
 protected:
  // A file of `blocks` full blocks of random bytes, written and closed by another mount.
  uint64_t StoredFile(int blocks, std::string* model) {
    std::mt19937_64 rng(42);
    *model = RandomBytes(rng, static_cast<size_t>(blocks) * kBs);
    return WriteThrough({}, "f", *model);
  }
  int Gets() { return faulty_->calls(FaultInjectingStore::Op::kGet); }
  int Puts() { return faulty_->calls(FaultInjectingStore::Op::kPut); }
};

TEST_F(PatchFsTest, SmallWritesIntoStoredBlocksReadNothingUntilTheClose) {
  std::string model;
  const uint64_t ino = StoredFile(8, &model);
  auto fs = NewMount();  // cold: nothing of the file cached
  auto fh = fs->Open(ino, O_RDWR);
  ASSERT_OK(fh);
  std::mt19937_64 rng(1);
  const int gets_before = Gets();
  const int puts_before = Puts();
  std::set<uint64_t> touched;
  for (int i = 0; i < 300; ++i) {
    const uint64_t off = rng() % (model.size() - 512);
    const std::string data = RandomBytes(rng, 1 + rng() % 512);
    ASSERT_OK(fs->Write(*fh, off, data));
    model.replace(off, data.size(), data);
    touched.insert(off / kBs);
    touched.insert((off + data.size() - 1) / kBs);
  }
  EXPECT_EQ(Gets(), gets_before) << "a small write read the old block on the writer's time";
  EXPECT_EQ(Puts(), puts_before);
  // Reads of patched blocks see the writes over the old bytes (ranged reads of the old block).
  for (int i = 0; i < 50; ++i) {
    const uint64_t off = rng() % model.size();
    const size_t n = 1 + rng() % 9000;
    auto got = fs->Read(*fh, off, n);
    ASSERT_OK(got);
    ASSERT_TRUE(*got == model.substr(off, n)) << "read at " << off;
  }
  const int gets_at_close = Gets();
  ASSERT_OK(fs->Release(*fh));
  // Each touched block read at most once more (whole, to build its image) and stored once.
  EXPECT_LE(Gets() - gets_at_close, static_cast<int>(touched.size()));
  EXPECT_EQ(Puts() - puts_before, static_cast<int>(touched.size()));
  auto fresh = NewMount();
  EXPECT_TRUE(ReadAll(fresh.get(), ino) == model);
}

TEST_F(PatchFsTest, SequentialRewriteOfAStoredFileNeedsNoRead) {
  std::string model;
  const uint64_t ino = StoredFile(3, &model);
  auto fs = NewMount();
  auto fh = fs->Open(ino, O_WRONLY);
  ASSERT_OK(fh);
  const int gets_before = Gets();
  std::mt19937_64 rng(2);
  for (uint64_t off = 0; off < model.size(); off += 4096) {
    const std::string data = RandomBytes(rng, 4096);
    ASSERT_OK(fs->Write(*fh, off, data));
    model.replace(off, data.size(), data);
  }
  ASSERT_OK(fs->Release(*fh));
  EXPECT_EQ(Gets(), gets_before);
  auto fresh = NewMount();
  EXPECT_TRUE(ReadAll(fresh.get(), ino) == model);
}

TEST_F(PatchFsTest, TruncationCutsPatchesLikeTheFile) {
  std::string model;
  const uint64_t ino = StoredFile(3, &model);
  auto fs = NewMount();
  auto fh = fs->Open(ino, O_RDWR);
  ASSERT_OK(fh);
  // Written into block 1, then the file cut inside that write, then extended and written
  // past the cut: old bytes past the cut must read as zeros, not come back from the old block.
  ASSERT_OK(fs->Write(*fh, kBs + 100, std::string(200, 'a')));
  model.replace(kBs + 100, 200, std::string(200, 'a'));
  // (SetAttr commits what is buffered before it cuts, so here the cut meets a committed
  // block; BlockPatch::Truncate itself, for writes racing in after that commit, is checked
  // against the model above.)
  SetAttrArgs a;
  a.valid = pb::SETATTR_SIZE;
  a.size = kBs + 150;
  ASSERT_OK(fs->SetAttr(ino, a));
  model.resize(kBs + 150);
  a.size = 3 * kBs;
  ASSERT_OK(fs->SetAttr(ino, a));
  model.resize(3 * kBs, '\0');
  ASSERT_OK(fs->Write(*fh, kBs + 1000, std::string(10, 'b')));
  model.replace(kBs + 1000, 10, std::string(10, 'b'));
  auto got = fs->Read(*fh, kBs, 2 * kBs);
  ASSERT_OK(got);
  EXPECT_TRUE(*got == model.substr(kBs, 2 * kBs));
  ASSERT_OK(fs->Release(*fh));
  auto fresh = NewMount();
  EXPECT_TRUE(ReadAll(fresh.get(), ino) == model);
}

TEST_F(PatchFsTest, ManyPatchedBlocksAreSealedInBoundedBatches) {
  std::string model;
  const uint64_t ino = StoredFile(40, &model);
  FsOptions o;
  o.max_inflight_per_file = 4;
  auto fs = NewMount(o);
  auto fh = fs->Open(ino, O_RDWR);
  ASSERT_OK(fh);
  for (int b = 0; b < 40; ++b) {
    ASSERT_OK(fs->Write(*fh, b * kBs + 7, "x"));
    model[b * kBs + 7] = 'x';
  }
  const int puts_before = Puts();
  ASSERT_OK(fs->Fsync(*fh));
  EXPECT_EQ(Puts() - puts_before, 40);
  ASSERT_OK(fs->Release(*fh));
  auto fresh = NewMount();
  EXPECT_TRUE(ReadAll(fresh.get(), ino) == model);
}

TEST_F(PatchFsTest, AnUnreadableOldBlockFailsTheCloseAndTheDataIsKeptForTheRetry) {
  std::string model;
  const uint64_t ino = StoredFile(2, &model);
  auto fs = NewMount();
  auto fh = fs->Open(ino, O_RDWR);
  ASSERT_OK(fh);
  ASSERT_OK(fs->Write(*fh, 10, "patched"));
  model.replace(10, 7, "patched");
  faulty_->FailNext(FaultInjectingStore::Op::kGet, absl::UnavailableError("store down"),
                    FaultInjectingStore::kForever);
  absl::Status s = fs->Fsync(*fh);
  EXPECT_EQ(StatusToErrno(s), EIO) << s;
  faulty_->ClearFaults();
  ASSERT_OK(fs->Fsync(*fh));
  ASSERT_OK(fs->Release(*fh));
  auto fresh = NewMount();
  EXPECT_TRUE(ReadAll(fresh.get(), ino) == model);
}

// A small write into a small (inline) file patches the inline bytes and the file stays inline:
// no store call at all, and the bytes are exact.
TEST_F(PatchFsTest, PatchedInlineFileStaysInline) {
  std::string model(3000, 'i');
  const uint64_t ino = WriteThrough({}, "small", model);
  auto fs = NewMount();
  auto fh = fs->Open(ino, O_RDWR);
  ASSERT_OK(fh);
  const int gets = Gets();
  const int puts = Puts();
  ASSERT_OK(fs->Write(*fh, 100, "patch"));
  model.replace(100, 5, "patch");
  ASSERT_OK(fs->Release(*fh));
  EXPECT_EQ(Gets(), gets);
  EXPECT_EQ(Puts(), puts);
  auto fresh = NewMount();
  EXPECT_TRUE(ReadAll(fresh.get(), ino) == model);
}

}  // namespace
}  // namespace nighfs::fs
