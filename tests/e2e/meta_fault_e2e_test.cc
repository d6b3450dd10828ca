// The metadata server dies under a live mount: killed with SIGKILL at random points, and made to
// exit right after committing a mutation but before replying (the test-only
// NIGHFS_TEST_CRASH_AFTER_COMMIT of nighfs-meta). Each retried mutation must get the answer of
// its first execution: no EEXIST for the mount's own O_EXCL create, no ENOENT for its own
// unlink, rename or rmdir.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <iostream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "gtest/gtest.h"
#include "metadata_client/meta_client.h"
#include "tests/e2e/cluster.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {
namespace {

namespace stdfs = std::filesystem;

class MetaFaultTest : public ClusterTest {
 protected:
  void StartCluster(std::vector<std::string> meta_args, const std::string& mount_options,
                    uint32_t block_size = 0) {
    ASSERT_NO_FATAL_FAILURE(StartMeta(std::move(meta_args)));
    ASSERT_OK(CreateVolume(meta_->address(), "vol", BlocksUrl(), block_size));
    mount_ = MountVolume("vol", "mnt", mount_options);
    ASSERT_NE(mount_, nullptr);
  }

  // One lock-file style round in its own directory; every step must succeed. Returns the
  // steps that failed, with their errno.
  std::vector<std::string> Round(int n) {
    const std::string d = absl::StrCat(mount_->path(), "/r", n);
    std::vector<std::string> wrong;
    auto check = [&](const char* what, int rc) {
      if (rc != 0) wrong.push_back(absl::StrCat(what, " in round ", n, ": ", std::strerror(errno)));
    };
    check("mkdir", ::mkdir(d.c_str(), 0755));
    int fd = ::open((d + "/lock").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    check("open(O_CREAT|O_EXCL)", fd < 0 ? -1 : 0);
    if (fd >= 0) ::close(fd);
    check("link", ::link((d + "/lock").c_str(), (d + "/lock2").c_str()));
    check("rename", ::rename((d + "/lock2").c_str(), (d + "/lock3").c_str()));
    check("unlink", ::unlink((d + "/lock3").c_str()));
    check("mkdir sub", ::mkdir((d + "/sub").c_str(), 0755));
    check("rmdir sub", ::rmdir((d + "/sub").c_str()));
    check("unlink lock", ::unlink((d + "/lock").c_str()));
    check("rmdir", ::rmdir(d.c_str()));
    return wrong;
  }

  // `cycles` kill/restart cycles of nighfs-meta during Round()s: even cycles exit right after
  // the k-th committed mutation (k random in 1..9), odd ones SIGKILL after a random delay.
  // Returns every wrong answer seen. The server is restarted from this thread (children die
  // with the thread that started them); the rounds run on another.
  std::vector<std::string> KillCycles(int cycles, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::string> wrong;
    for (int c = 0; c < cycles; ++c) {
      const bool crash_point = c % 2 == 0;
      if (crash_point) {
        meta_->SetEnv({{"NIGHFS_TEST_CRASH_AFTER_COMMIT",
                        std::to_string(std::uniform_int_distribution<int>(1, 9)(rng))}});
        EXPECT_OK(meta_->Restart());
        meta_->SetEnv({});
      }
      std::atomic<bool> done{false};
      std::vector<std::string> round_wrong;
      std::thread worker([&] {
        round_wrong = Round(c);
        done = true;
      });
      if (crash_point) {
        // Dies at its crash point (or the round needed fewer mutations than k).
        WaitFor([&] { return done.load() || !meta_->Running(); }, absl::Seconds(20));
      } else {
        absl::SleepFor(absl::Microseconds(std::uniform_int_distribution<int>(0, 20000)(rng)));
        EXPECT_OK(meta_->Kill());
      }
      EXPECT_OK(meta_->Restart());
      worker.join();
      wrong.insert(wrong.end(), round_wrong.begin(), round_wrong.end());
    }
    return wrong;
  }

  FuseMount* mount_ = nullptr;
};

// meta_timeout spans a restart; no attribute or entry caching, so every step asks the server.
constexpr char kMountOptions[] = "meta_timeout=30,attr_timeout=0,entry_timeout=0";

TEST_F(MetaFaultTest, RetriedMutationsAreExactlyOnceAcrossMetaCrashes) {
  StartCluster({}, kMountOptions);
  ASSERT_NE(mount_, nullptr);
  std::vector<std::string> wrong = KillCycles(30, 20261129);
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " wrong answer(s) in 30 cycles:\n"
                             << absl::StrJoin(wrong, "\n");
  ASSERT_TRUE(IsMounted(mount_->path())) << mount_->log();
  // Nothing is left over, nothing is missing.
  EXPECT_TRUE(stdfs::is_empty(mount_->path()));
  if (HasFailure()) ADD_FAILURE() << mount_->log() << meta_->log();
}

// --namespace-sync=batched leaves namespace changes unsynced for up to its interval (60 s here,
// so the timer never runs): a SIGKILL of nighfs-meta still loses none of them (they are in the
// kernel's page cache; only a crash of the machine can lose that window), retried mutations
// stay exactly-once, and fsync of a folder reaches the server's Sync.
TEST_F(MetaFaultTest, BatchedNamespaceSyncLosesNothingWhenTheServerIsKilled) {
  StartCluster({"--namespace-sync=batched", "--namespace-sync-interval=60"}, kMountOptions);
  ASSERT_NE(mount_, nullptr);
  absl::StatusOr<status::v1::MountStatus> st = ReadMountStatus(*mount_);
  ASSERT_OK(st);
  EXPECT_EQ(st->namespace_sync_ms(), 60'000u);  // what `nighfs status` shows
  const std::string d = mount_->path() + "/names";
  ASSERT_EQ(::mkdir(d.c_str(), 0755), 0) << std::strerror(errno);
  std::set<std::string> made;
  for (int i = 0; i < 50; ++i) {
    const std::string name = absl::StrCat("f", i);
    const int fd = ::open((d + "/" + name).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ::close(fd);
    made.insert(name);
  }
  ASSERT_EQ(::rename((d + "/f0").c_str(), (d + "/moved").c_str()), 0) << std::strerror(errno);
  made.erase("f0");
  made.insert("moved");
  ASSERT_EQ(::unlink((d + "/f1").c_str()), 0) << std::strerror(errno);
  made.erase("f1");
  ASSERT_OK(meta_->Kill());
  ASSERT_OK(meta_->Restart());
  std::set<std::string> listed;
  for (const auto& e : stdfs::directory_iterator(d)) listed.insert(e.path().filename());
  EXPECT_EQ(listed, made);

  const int dfd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0) << std::strerror(errno);
  EXPECT_EQ(::fsync(dfd), 0) << std::strerror(errno);
  ::close(dfd);

  std::vector<std::string> wrong = KillCycles(10, 20261130);
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " wrong answer(s) in 10 cycles:\n"
                             << absl::StrJoin(wrong, "\n");
  if (HasFailure()) ADD_FAILURE() << mount_->log() << meta_->log();
}

// The control: with the reply record turned off, the same 30 cycles (same seed) give the mount
// wrong answers, so the test above can fail; the count is printed for comparison.
TEST_F(MetaFaultTest, WithoutRecordedRepliesRetriesAnswerWrongly) {
  StartCluster({"--request-reply-ttl", "0"}, kMountOptions);
  ASSERT_NE(mount_, nullptr);
  std::vector<std::string> wrong = KillCycles(30, 20261129);
  std::cerr << wrong.size() << " wrong answer(s) in 30 cycles without deduplication:\n"
            << absl::StrJoin(wrong, "\n") << "\n";
  EXPECT_FALSE(wrong.empty());
}

// The block objects in the file store under `blocks` (one file each, "blk/xx/<16 hex>"). The
// temporary files of uploads cut short by the kill are the store's own business, not blocks.
std::set<std::string> StoredObjects(const std::string& blocks) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = stdfs::recursive_directory_iterator(blocks, ec);
       !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!it->is_regular_file(ec) || name.size() != 16 ||
        name.find_first_not_of("0123456789abcdef") != std::string::npos) {
      continue;
    }
    out.insert(stdfs::relative(it->path(), blocks).string());
  }
  return out;
}

// The store keys of every block the block maps of root's files `names` reference.
absl::StatusOr<std::set<std::string>> ReferencedObjects(const std::string& meta_address,
                                                        const std::vector<std::string>& names) {
  MetaClientOptions o;
  o.address = meta_address;
  o.ca_file = LabCaFile();
  o.bearer_token = AdminTokenFor(meta_address);  // reads the whole namespace
  o.op_timeout = absl::Seconds(20);
  auto client = NewMetaClient(o);
  if (!client.ok()) return client.status();
  auto vols = (*client)->ListVolumes(meta::v1::ListVolumesRequest());
  if (!vols.ok()) return vols.status();
  if (vols->volumes_size() != 1) return absl::InternalError("expected one volume");
  std::set<std::string> out;
  for (const std::string& name : names) {
    meta::v1::LookupRequest l;
    l.set_volume_id(vols->volumes(0).id());
    l.set_parent(1);
    l.set_name(name);
    auto e = (*client)->Lookup(l);
    if (!e.ok()) return e.status();
    meta::v1::GetBlocksRequest g;
    g.set_volume_id(vols->volumes(0).id());
    g.set_ino(e->attr().ino());
    auto b = (*client)->GetBlocks(g);
    if (!b.ok()) return b.status();
    for (const auto& block : b->blocks()) out.insert(blockstore::BlockKey(block.id()));
  }
  return out;
}

// kill -9 of a mount mid-write leaves uploaded, never committed blocks; once its session has
// expired and gc_grace has passed, the store holds exactly the referenced blocks.
TEST_F(MetaFaultTest, BlocksOfAKilledMountAreCollectedAfterItsSessionEnds) {
  StartCluster({"--gc-grace", "1"}, "meta_timeout=30", 64 << 10);
  ASSERT_NE(mount_, nullptr);
  const std::string blocks = root_ + "/blocks";
  {
    std::ofstream keep(mount_->path() + "/keep");
    keep << std::string(300 << 10, 'k');
  }
  const size_t kept = StoredObjects(blocks).size();
  ASSERT_GT(kept, 0u);
  // The leftovers this is about: uploaded, never committed. The mount commits each upload
  // right after it lands, so a kill can fall where every uploaded block is committed; then
  // another mount writes and is killed (a few tries make the leftover all but certain).
  std::vector<std::string> names = {"keep"};
  absl::StatusOr<std::set<std::string>> referenced;
  std::set<std::string> stored;
  for (int attempt = 0; attempt < 5; ++attempt) {
    FuseMount* writer_mount =
        attempt == 0 ? mount_ : MountVolume("vol", absl::StrCat("mnt", attempt), "meta_timeout=30");
    ASSERT_NE(writer_mount, nullptr);
    const std::string name = absl::StrCat("big", attempt);
    names.push_back(name);
    const size_t before = StoredObjects(blocks).size();
    // A writer that never gets to close its file.
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      int fd = ::open((writer_mount->path() + "/" + name).c_str(), O_CREAT | O_WRONLY, 0644);
      if (fd < 0) return;
      const std::string chunk(64 << 10, 'b');
      for (int i = 0; i < 1024 && !stop; ++i) {
        if (::write(fd, chunk.data(), chunk.size()) < 0) break;
      }
      ::close(fd);
    });
    const bool uploading =
        WaitFor([&] { return StoredObjects(blocks).size() >= before + 20; }, absl::Seconds(30));
    ::kill(writer_mount->process()->pid(), SIGKILL);
    stop = true;
    writer.join();
    ASSERT_TRUE(uploading) << writer_mount->log();
    (void)writer_mount->process()->Wait(absl::Seconds(10));

    referenced = ReferencedObjects(meta_->address(), names);
    ASSERT_OK(referenced);
    stored = StoredObjects(blocks);
    if (stored.size() > referenced->size()) break;
  }
  ASSERT_GT(stored.size(), referenced->size()) << "every kill fell after a commit";

  // The dead mount's session expires after a second; its ids are reclaimed a grace later.
  ASSERT_OK(meta_->Stop());
  meta_.reset();
  auto m = MetaServer::Start(root_ + "/meta", {"--session-timeout", "1", "--gc-grace", "1",
                                               "--gc-interval", "0.2"});
  ASSERT_OK(m);
  meta_ = std::move(*m);
  const bool collected =
      WaitFor([&] { return StoredObjects(blocks) == *referenced; }, absl::Seconds(20));
  if (!collected) {
    std::vector<std::string> extra;
    for (const std::string& key : StoredObjects(blocks)) {
      if (!referenced->contains(key)) extra.push_back(key);
    }
    ADD_FAILURE() << extra.size() << " unreferenced object(s) left: " << absl::StrJoin(extra, " ")
                  << "\n" << meta_->log();
  }
  // Nothing referenced was touched (same block maps as before the collection).
  absl::StatusOr<std::set<std::string>> after = ReferencedObjects(meta_->address(), names);
  ASSERT_OK(after);
  EXPECT_EQ(*after, *referenced);
}

}  // namespace
}  // namespace nighfs::testing
