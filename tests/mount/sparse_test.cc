// Sparse files: the pure functions of mount/sparse.h checked against a byte-level model, and
// the FileSystem's lseek(SEEK_DATA/SEEK_HOLE), fallocate and st_blocks against an in-process
// metadata service and an in-memory block store.
//
// Tests named *StoredBytes* and *Punch* need the metadata server's Attr.stored_bytes and
// CommitBlocksRequest.drop_indexes (branch `meta`).
#include "mount/sparse.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "blockstore/block_store.h"
#include "common/errno_status.h"
#include "gtest/gtest.h"
#include "meta/meta_service.h"
#include "mount/filesystem.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::fs {
namespace {

namespace pb = ::nighfs::meta::v1;
using testing::TempDir;

// ---- pure functions ----

// A block map and the bytes it describes: data[i] != 0 exactly where a block holds data.
struct MapModel {
  uint64_t bs = 0;
  uint64_t size = 0;
  std::map<uint64_t, uint64_t> lengths;  // index -> valid length

  std::optional<MappedBlock> Next(uint64_t i) const {
    auto it = lengths.lower_bound(i);
    if (it == lengths.end()) return std::nullopt;
    return MappedBlock{it->first, it->second};
  }
  bool IsData(uint64_t pos) const {
    auto it = lengths.find(pos / bs);
    return it != lengths.end() && pos % bs < it->second && pos < size;
  }
};

MapModel RandomMap(std::mt19937& rng) {
  MapModel m;
  m.bs = 1 + rng() % 16;
  const uint64_t blocks = rng() % 12;
  m.size = blocks * m.bs + rng() % (m.bs + 1);
  for (uint64_t i = 0; i * m.bs < m.size + m.bs; ++i) {
    if (rng() % 3 == 0) continue;  // a hole
    const uint64_t room = std::min<uint64_t>(m.bs, m.size > i * m.bs ? m.size - i * m.bs : 0);
    if (room == 0) continue;
    m.lengths[i] = rng() % 2 ? room : rng() % (room + 1);  // full, or short (maybe empty)
  }
  return m;
}

int ErrnoOf(const absl::Status& s) { return StatusToErrno(s); }

TEST(SparseSeek, TerabyteHoleHasNoData) {
  const uint64_t tib = 1ull << 40;
  auto none = [](uint64_t) -> std::optional<MappedBlock> { return std::nullopt; };
  EXPECT_EQ(ErrnoOf(SeekData(none, 4 << 20, tib, 0).status()), ENXIO);
  EXPECT_EQ(*SeekHole(none, 4 << 20, tib, 0), 0u);
  EXPECT_EQ(*SeekHole(none, 4 << 20, tib, tib - 1), tib - 1);
  EXPECT_EQ(ErrnoOf(SeekHole(none, 4 << 20, tib, tib).status()), ENXIO);
  EXPECT_EQ(ErrnoOf(SeekData(none, 4 << 20, 0, 0).status()), ENXIO);
  EXPECT_EQ(ErrnoOf(SeekHole(none, 4 << 20, 0, 0).status()), ENXIO);
  EXPECT_EQ(ErrnoOf(SeekData(none, 4 << 20, tib, -1).status()), ENXIO);
}

// Every offset of many random maps, against a byte-by-byte scan: SEEK_DATA finds the first
// data byte, SEEK_HOLE the first non-data byte (or the size), ENXIO where lseek(2) says.
TEST(SparseSeek, MatchesByteScanOnRandomMaps) {
  std::mt19937 rng(11);
  for (int round = 0; round < 2000; ++round) {
    const MapModel m = RandomMap(rng);
    auto next = [&m](uint64_t i) { return m.Next(i); };
    for (uint64_t off = 0; off <= m.size + 2; ++off) {
      SCOPED_TRACE(absl::StrCat("round ", round, " bs ", m.bs, " size ", m.size, " off ", off));
      absl::StatusOr<uint64_t> data = SeekData(next, m.bs, m.size, static_cast<int64_t>(off));
      absl::StatusOr<uint64_t> hole = SeekHole(next, m.bs, m.size, static_cast<int64_t>(off));
      if (off >= m.size) {
        EXPECT_EQ(ErrnoOf(data.status()), ENXIO);
        EXPECT_EQ(ErrnoOf(hole.status()), ENXIO);
        continue;
      }
      uint64_t want_data = off;
      while (want_data < m.size && !m.IsData(want_data)) ++want_data;
      if (want_data == m.size) {
        EXPECT_EQ(ErrnoOf(data.status()), ENXIO);
      } else {
        ASSERT_OK(data);
        EXPECT_EQ(*data, want_data);
      }
      uint64_t want_hole = off;
      while (want_hole < m.size && m.IsData(want_hole)) ++want_hole;
      ASSERT_OK(hole);
      EXPECT_EQ(*hole, want_hole);
    }
  }
}

// A punch planned on a random map, applied to the bytes: exactly the punched range (below the
// size) reads zero afterwards, everything else is unchanged, and no block stores more.
TEST(SparsePunch, PlanZeroesExactlyTheRange) {
  std::mt19937 rng(5);
  for (int round = 0; round < 5000; ++round) {
    const MapModel m = RandomMap(rng);
    const uint64_t offset = rng() % (m.size + m.bs + 1);
    const uint64_t len = 1 + rng() % (m.size + 2 * m.bs);
    SCOPED_TRACE(absl::StrCat("round ", round, " bs ", m.bs, " size ", m.size, " punch ", offset,
                              "+", len));
    std::vector<MappedBlock> mapped;
    for (const auto& [i, l] : m.lengths) mapped.push_back({i, l});
    const PunchPlan plan = PlanPunch(mapped, m.bs, m.size, offset, len);

    MapModel after = m;
    std::vector<bool> zeroed(m.size, false);
    for (uint64_t i : plan.drop) {
      ASSERT_TRUE(after.lengths.erase(i)) << "dropped unmapped block " << i;
    }
    for (const auto& [from, to] : plan.zero) {
      ASSERT_LT(from, to);
      ASSERT_LE(to, m.size);
      for (uint64_t p = from; p < to; ++p) {
        ASSERT_TRUE(m.IsData(p)) << "zero-fill of a hole at " << p << " would store it";
        zeroed[p] = true;
      }
    }
    for (uint64_t p = 0; p < m.size; ++p) {
      const bool punched = p >= offset && p - offset < len;
      const bool data_after = after.IsData(p) && !zeroed[p];
      EXPECT_EQ(data_after, m.IsData(p) && !punched) << "byte " << p;
    }
    EXPECT_LE(plan.zero.size(), 2u);
  }
}

TEST(SparseFallocate, ModeChecksFollowTheKernel) {
  EXPECT_OK(CheckFallocate(0, 0, 1));
  EXPECT_OK(CheckFallocate(FALLOC_FL_KEEP_SIZE, 5, 1));
  EXPECT_OK(CheckFallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1));
  EXPECT_EQ(ErrnoOf(CheckFallocate(0, -1, 1)), EINVAL);
  EXPECT_EQ(ErrnoOf(CheckFallocate(0, 0, 0)), EINVAL);
  EXPECT_EQ(ErrnoOf(CheckFallocate(FALLOC_FL_PUNCH_HOLE, 0, 1)), EOPNOTSUPP);
  EXPECT_EQ(ErrnoOf(CheckFallocate(FALLOC_FL_ZERO_RANGE, 0, 1)), EOPNOTSUPP);
  EXPECT_EQ(ErrnoOf(CheckFallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 1)), EOPNOTSUPP);
  EXPECT_EQ(ErrnoOf(CheckFallocate(FALLOC_FL_COLLAPSE_RANGE, 0, 1)), EOPNOTSUPP);
  EXPECT_EQ(ErrnoOf(CheckFallocate(FALLOC_FL_INSERT_RANGE, 0, 1)), EOPNOTSUPP);
  EXPECT_EQ(ErrnoOf(CheckFallocate(0, INT64_MAX, 1)), EFBIG);
}

// ---- the FileSystem against an in-process metadata service ----

constexpr uint32_t kBs = 64 << 10;

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(1 + rng() % 255);  // never zero: data is visible
  return s;
}

blkcnt_t Blocks(const pb::Attr& a) { return AttrToStat(a, kBs).st_blocks; }
blkcnt_t BlocksFor(uint64_t bytes) { return static_cast<blkcnt_t>((bytes + 511) / 512); }

class SparseFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> n{0};
    url_ = absl::StrCat("mem://sparse-test-", ::getpid(), "-", n.fetch_add(1));
    meta::MetaServiceOptions mo;
    mo.db_path = dir_.path() + "/meta.db";
    mo.run_background = false;
    mo.gc_grace = absl::ZeroDuration();
    mo.allow_test_stores = true;  // mem:// volumes
    auto m = meta::MetaService::Open(mo);
    ASSERT_OK(m);
    meta_ = std::move(*m);
    pb::CreateVolumeRequest cv;
    cv.set_name("v");
    cv.set_block_size(kBs);
    cv.set_store_url(url_);
    auto vol = meta_->CreateVolume(cv);
    ASSERT_OK(vol);
    volume_id_ = vol->volume().id();
    auto store = blockstore::OpenBlockStore(url_, {});
    ASSERT_OK(store);
    store_ = std::move(*store);
    fs_ = NewMount();
  }

  // A new mount: nothing comes from another mount's memory.
  std::unique_ptr<FileSystem> NewMount() {
    pb::MountRequest mr;
    mr.set_volume_name("v");
    auto r = meta_->Mount(mr);
    EXPECT_OK(r);
    FsOptions opts;
    opts.io_threads = 4;
    auto fs = FileSystem::Create(meta_.get(), store_.get(), r->volume(), r->session_id(), opts);
    EXPECT_OK(fs);
    return std::move(*fs);
  }

  uint64_t CreateFile(const std::string& name, uint64_t* fh) {
    auto made = fs_->Create(Caller{0, 0}, 1, name, 0644, O_RDWR);
    EXPECT_OK(made);
    *fh = made->second;
    return made->first.ino();
  }

  std::string ReadAll(FileSystem* fs, uint64_t fh, uint64_t size) {
    auto got = fs->Read(fh, 0, size + 1);
    EXPECT_OK(got);
    return got.ok() ? *got : "";
  }

  std::vector<uint64_t> MappedIndexes(uint64_t ino) {
    pb::GetBlocksRequest req;
    req.set_volume_id(volume_id_);
    req.set_ino(ino);
    auto r = meta_->GetBlocks(req);
    EXPECT_OK(r);
    std::vector<uint64_t> out;
    if (r.ok()) {
      for (const pb::Block& b : r->blocks()) out.push_back(b.index());
    }
    return out;
  }

  // Every (SEEK_DATA, SEEK_HOLE) answer is sound for `model` (a hole never hides a nonzero
  // byte) and the walk from 0 visits exactly `extents`.
  void ExpectWalk(FileSystem* fs, uint64_t fh, const std::vector<std::pair<uint64_t, uint64_t>>& extents,
                  uint64_t size) {
    std::vector<std::pair<uint64_t, uint64_t>> got;
    for (uint64_t pos = 0; pos < size;) {
      absl::StatusOr<uint64_t> d = fs->Lseek(fh, static_cast<int64_t>(pos), SEEK_DATA);
      if (!d.ok()) {
        EXPECT_EQ(ErrnoOf(d.status()), ENXIO) << d.status();
        break;
      }
      auto h = fs->Lseek(fh, static_cast<int64_t>(*d), SEEK_HOLE);
      ASSERT_OK(h);
      ASSERT_GT(*h, *d);
      got.emplace_back(*d, *h);
      pos = *h;
    }
    EXPECT_EQ(got, extents);
    EXPECT_EQ(ErrnoOf(fs->Lseek(fh, static_cast<int64_t>(size), SEEK_DATA).status()), ENXIO);
    EXPECT_EQ(ErrnoOf(fs->Lseek(fh, static_cast<int64_t>(size), SEEK_HOLE).status()), ENXIO);
  }

  TempDir dir_;
  std::string url_;
  uint64_t volume_id_ = 0;
  std::unique_ptr<meta::MetaService> meta_;
  std::unique_ptr<blockstore::BlockStore> store_;
  std::unique_ptr<FileSystem> fs_;
};

TEST_F(SparseFsTest, TerabyteTruncateStoresNothing) {
  uint64_t fh = 0;
  const uint64_t ino = CreateFile("big", &fh);
  SetAttrArgs a;
  a.valid = pb::SETATTR_SIZE;
  a.size = 1ull << 40;
  auto attr = fs_->SetAttr(ino, a);
  ASSERT_OK(attr);
  EXPECT_EQ(attr->size(), 1ull << 40);
  EXPECT_EQ(Blocks(*attr), 0);
  EXPECT_EQ(ErrnoOf(fs_->Lseek(fh, 0, SEEK_DATA).status()), ENXIO);
  EXPECT_EQ(*fs_->Lseek(fh, 0, SEEK_HOLE), 0u);
  EXPECT_EQ(*fs_->Lseek(fh, (1ll << 40) - 1, SEEK_HOLE), (1ull << 40) - 1);
  EXPECT_EQ(ErrnoOf(fs_->Lseek(fh, 0, SEEK_END).status()), EINVAL);
  ASSERT_OK(fs_->Release(fh));
  auto after = fs_->GetAttr(ino);
  ASSERT_OK(after);
  EXPECT_EQ(Blocks(*after), 0);
}

// Needs Attr.stored_bytes from the server.
TEST_F(SparseFsTest, StoredBytesCountDataBufferedAndCommitted) {
  uint64_t fh = 0;
  const uint64_t ino = CreateFile("f", &fh);
  const uint64_t n = 2 * kBs + 100;
  ASSERT_OK(fs_->Write(fh, 0, Bytes(n, 1)));
  // Open with buffered data: what it will store once committed.
  auto open_attr = fs_->GetAttr(ino);
  ASSERT_OK(open_attr);
  EXPECT_EQ(Blocks(*open_attr), BlocksFor(n));
  ASSERT_OK(fs_->Flush(fh));
  auto flushed = fs_->GetAttr(ino);
  ASSERT_OK(flushed);
  EXPECT_EQ(flushed->stored_bytes(), n);
  // Rewriting a committed block does not count it twice while buffered.
  ASSERT_OK(fs_->Write(fh, 10, Bytes(50, 2)));
  auto rewritten = fs_->GetAttr(ino);
  ASSERT_OK(rewritten);
  EXPECT_EQ(Blocks(*rewritten), BlocksFor(n));
  ASSERT_OK(fs_->Release(fh));
  auto other = NewMount();
  auto fresh = other->GetAttr(ino);
  ASSERT_OK(fresh);
  EXPECT_EQ(fresh->stored_bytes(), n);
  EXPECT_EQ(Blocks(*fresh), BlocksFor(n));
}

TEST_F(SparseFsTest, SeekWalksDataAndHolesBufferedCommittedAndRemounted) {
  uint64_t fh = 0;
  const uint64_t ino = CreateFile("holes", &fh);
  ASSERT_OK(fs_->Write(fh, 0, Bytes(kBs, 1)));
  ASSERT_OK(fs_->Write(fh, 10 * kBs, Bytes(kBs / 2, 2)));
  const uint64_t size = 10 * kBs + kBs / 2;
  const std::vector<std::pair<uint64_t, uint64_t>> extents = {{0, kBs}, {10 * kBs, size}};
  ExpectWalk(fs_.get(), fh, extents, size);  // buffered and in flight
  ASSERT_OK(fs_->Flush(fh));
  ExpectWalk(fs_.get(), fh, extents, size);  // committed
  // A hole in the middle of a block: its valid length ends before the next data.
  ASSERT_OK(fs_->Write(fh, 20 * kBs + 7, "x"));
  const std::vector<std::pair<uint64_t, uint64_t>> three = {
      {0, kBs}, {10 * kBs, size}, {20 * kBs, 20 * kBs + 8}};
  ExpectWalk(fs_.get(), fh, three, 20 * kBs + 8);
  ASSERT_OK(fs_->Release(fh));
  auto other = NewMount();
  auto rfh = other->Open(ino, O_RDONLY);
  ASSERT_OK(rfh);
  ExpectWalk(other.get(), *rfh, three, 20 * kBs + 8);
  ASSERT_OK(other->Release(*rfh));
}

TEST_F(SparseFsTest, FallocateGrowsWithoutStoringAndChecksHandleAndMode) {
  uint64_t fh = 0;
  const uint64_t ino = CreateFile("fa", &fh);
  ASSERT_OK(fs_->Write(fh, 0, Bytes(100, 3)));
  ASSERT_OK(fs_->Fallocate(fh, 0, 50, 5 * kBs));  // grows to 50 + 5 blocks
  auto grown = fs_->GetAttr(ino);
  ASSERT_OK(grown);
  EXPECT_EQ(grown->size(), 50 + 5 * kBs);
  ASSERT_OK(fs_->Fallocate(fh, 0, 0, 10));  // inside: nothing changes
  ASSERT_OK(fs_->Fallocate(fh, FALLOC_FL_KEEP_SIZE, 0, 100 * kBs));
  auto kept = fs_->GetAttr(ino);
  ASSERT_OK(kept);
  EXPECT_EQ(kept->size(), 50 + 5 * kBs);
  EXPECT_EQ(ErrnoOf(fs_->Fallocate(fh, FALLOC_FL_ZERO_RANGE, 0, 10)), EOPNOTSUPP);
  EXPECT_EQ(ErrnoOf(fs_->Fallocate(fh, FALLOC_FL_PUNCH_HOLE, 0, 10)), EOPNOTSUPP);
  EXPECT_EQ(ErrnoOf(fs_->Fallocate(fh, 0, 0, 0)), EINVAL);
  EXPECT_EQ(ErrnoOf(fs_->Fallocate(fh + 1000, 0, 0, 1)), EBADF);
  const std::string want = Bytes(100, 3) + std::string(50 + 5 * kBs - 100, '\0');
  EXPECT_TRUE(ReadAll(fs_.get(), fh, want.size()) == want);
  ASSERT_OK(fs_->Release(fh));
  auto ro = fs_->Open(ino, O_RDONLY);
  ASSERT_OK(ro);
  EXPECT_EQ(ErrnoOf(fs_->Fallocate(*ro, 0, 0, 10 * kBs)), EBADF);
  ExpectWalk(fs_.get(), *ro, {{0, 100}}, 50 + 5 * kBs);
  ASSERT_OK(fs_->Release(*ro));
  // The size is the server's, not this mount's memory.
  auto other = NewMount();
  auto fresh = other->GetAttr(ino);
  ASSERT_OK(fresh);
  EXPECT_EQ(fresh->size(), 50 + 5 * kBs);
}

// Needs CommitBlocksRequest.drop_indexes and Attr.stored_bytes from the server.
TEST_F(SparseFsTest, PunchDropsWholeBlocksAndZeroesEdges) {
  uint64_t fh = 0;
  const uint64_t ino = CreateFile("punch", &fh);
  std::string model = Bytes(4 * kBs + 300, 4);
  ASSERT_OK(fs_->Write(fh, 0, model));  // partly buffered: the punch commits it first
  const uint64_t off = kBs / 2, len = 3 * kBs - kBs / 2 + 10;  // [bs/2, 3bs + 10)
  ASSERT_OK(fs_->Fallocate(fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len));
  std::fill(model.begin() + off, model.begin() + off + len, '\0');
  EXPECT_TRUE(ReadAll(fs_.get(), fh, model.size()) == model);
  ExpectWalk(fs_.get(), fh, {{0, kBs}, {3 * kBs, model.size()}}, model.size());
  ASSERT_OK(fs_->Release(fh));
  EXPECT_EQ(MappedIndexes(ino), (std::vector<uint64_t>{0, 3, 4}));
  // Past the end: nothing to do, the size stays.
  auto fh2 = fs_->Open(ino, O_WRONLY | O_APPEND);
  ASSERT_OK(fh2);
  ASSERT_OK(fs_->Fallocate(*fh2, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, model.size(), kBs));
  // The tail punched on an O_APPEND handle: its edge zeros go to the offset, not the end.
  ASSERT_OK(fs_->Fallocate(*fh2, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * kBs + 100, kBs));
  std::fill(model.begin() + 4 * kBs + 100, model.end(), '\0');
  ASSERT_OK(fs_->Release(*fh2));
  auto other = NewMount();
  auto rfh = other->Open(ino, O_RDONLY);
  ASSERT_OK(rfh);
  EXPECT_TRUE(ReadAll(other.get(), *rfh, model.size()) == model);
  ASSERT_OK(other->Release(*rfh));
  auto attr = other->GetAttr(ino);
  ASSERT_OK(attr);
  EXPECT_EQ(attr->size(), model.size());
  // Kept: block 0 (whole: its zeroed edge is stored), block 3 (whole) and block 4 (all 300
  // bytes: the punch began inside it, so its last 200 are stored zeros).
  EXPECT_EQ(attr->stored_bytes(), kBs + kBs + 300);
}

// A bounded random sequence of writes, punches, truncations, fallocates and reads against a
// string model; every lseek answer must be sound for the model (a reported hole reads zero)
// and exact for the block layout. Then a fresh mount reads the same bytes.
TEST_F(SparseFsTest, RandomSparseOperationsMatchModel) {
  uint64_t fh = 0;
  const uint64_t ino = CreateFile("model", &fh);
  std::string model;
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) {
    SCOPED_TRACE(absl::StrCat("step ", i, " size ", model.size()));
    const int op = rng() % 10;
    if (op < 4) {
      const uint64_t off = rng() % (16 * kBs);
      const std::string data = Bytes(1 + rng() % (2 * kBs), i);
      ASSERT_OK(fs_->Write(fh, off, data));
      if (model.size() < off + data.size()) model.resize(off + data.size(), '\0');
      model.replace(off, data.size(), data);
    } else if (op < 6) {
      const uint64_t off = rng() % (model.size() + kBs);
      const uint64_t len = 1 + rng() % (4 * kBs);
      ASSERT_OK(fs_->Fallocate(fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len));
      if (off < model.size()) {
        std::fill(model.begin() + off, model.begin() + std::min<uint64_t>(model.size(), off + len),
                  '\0');
      }
    } else if (op < 7) {
      SetAttrArgs a;
      a.valid = pb::SETATTR_SIZE;
      a.size = rng() % (16 * kBs);
      ASSERT_OK(fs_->SetAttr(ino, a));
      model.resize(a.size, '\0');
    } else if (op < 8) {
      const uint64_t off = rng() % (18 * kBs);
      const uint64_t len = 1 + rng() % (2 * kBs);
      ASSERT_OK(fs_->Fallocate(fh, rng() % 2 ? 0 : FALLOC_FL_KEEP_SIZE, off, len));
      // Only mode 0 grows the size; which one ran is seen through the size.
      auto attr = fs_->GetAttr(ino);
      ASSERT_OK(attr);
      ASSERT_TRUE(attr->size() == model.size() || attr->size() == off + len);
      model.resize(attr->size(), '\0');
    } else {
      const uint64_t off = rng() % (model.size() + 10);
      const size_t n = 1 + rng() % (3 * kBs);
      auto got = fs_->Read(fh, off, n);
      ASSERT_OK(got);
      ASSERT_TRUE(*got == (off >= model.size() ? "" : model.substr(off, n)));
      if (off < model.size()) {
        auto d = fs_->Lseek(fh, static_cast<int64_t>(off), SEEK_DATA);
        const size_t nz = model.find_first_not_of('\0', off);
        if (nz == std::string::npos) {
          ASSERT_TRUE(!d.ok() || *d >= off);
        } else {
          ASSERT_OK(d);
          ASSERT_LE(*d, nz);  // no data skipped
          ASSERT_GE(*d, off);
        }
        auto h = fs_->Lseek(fh, static_cast<int64_t>(off), SEEK_HOLE);
        ASSERT_OK(h);
        ASSERT_GE(*h, off);
        ASSERT_LE(*h, model.size());
        // The hole found reads zero up to the next data.
        if (*h < model.size()) {
          auto next = fs_->Lseek(fh, static_cast<int64_t>(*h), SEEK_DATA);
          const uint64_t stop = next.ok() ? *next : model.size();
          const size_t first_nonzero = model.find_first_not_of('\0', *h);
          ASSERT_TRUE(first_nonzero == std::string::npos || first_nonzero >= stop)
              << "hole [" << *h << ", " << stop << ") holds data at " << first_nonzero;
        }
      }
    }
  }
  ASSERT_OK(fs_->Release(fh));
  auto other = NewMount();
  auto rfh = other->Open(ino, O_RDONLY);
  ASSERT_OK(rfh);
  EXPECT_TRUE(ReadAll(other.get(), *rfh, model.size()) == model);
  ASSERT_OK(other->Release(*rfh));
}

}  // namespace
}  // namespace nighfs::fs
