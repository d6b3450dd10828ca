#include "tests/blockstore/conformance.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <set>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "tests/testing/test_status.h"

namespace nighfs::blockstore::conformance {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Compares possibly huge byte strings without printing them: the first difference is enough.
::testing::AssertionResult SameBytes(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  const size_t n = std::min(got.size(), want.size());
  size_t i = 0;
  while (i < n && got[i] == want[i]) ++i;
  return ::testing::AssertionFailure()
         << "got " << got.size() << " bytes, want " << want.size() << "; first difference at "
         << "offset " << i;
}

std::vector<std::string> Keys(const std::vector<ObjectInfo>& objects) {
  std::vector<std::string> out;
  for (const ObjectInfo& o : objects) out.push_back(o.key);
  return out;
}

// All objects under `prefix`, following pages, checking each page's size and token contract.
std::vector<ObjectInfo> ListAll(BlockStore& store, const std::string& prefix, int max_keys,
                                int* pages = nullptr) {
  std::vector<ObjectInfo> all;
  std::string token;
  int n = 0;
  while (true) {
    absl::StatusOr<ListPage> page = store.List(prefix, token, max_keys);
    EXPECT_OK(page);
    if (!page.ok()) break;
    ++n;
    EXPECT_LE(page->objects.size(), static_cast<size_t>(max_keys));
    all.insert(all.end(), page->objects.begin(), page->objects.end());
    if (page->next_token.empty()) break;
    EXPECT_FALSE(page->objects.empty()) << "a non-final page with no objects";
    if (n > 100000) {
      ADD_FAILURE() << "List never ends";
      break;
    }
    token = page->next_token;
  }
  if (pages != nullptr) *pages = n;
  return all;
}

}  // namespace

void PrintTo(const StoreFactory& factory, std::ostream* os) { *os << factory.name; }

std::string StoreFactoryName(const ::testing::TestParamInfo<StoreFactory>& info) {
  std::string name = info.param.name.empty() ? absl::StrCat("store", info.index)
                                             : info.param.name;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

std::string TestData(size_t size, uint64_t seed) {
  // SplitMix64: cheap, and every 8-byte word differs, so a misplaced range is always visible.
  std::string out(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; i += 8) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    for (size_t j = 0; j < 8 && i + j < size; ++j) out[i + j] = static_cast<char>(z >> (8 * j));
  }
  return out;
}

std::string UniqueTestPrefix() {
  std::string name = "test";
  if (const ::testing::TestInfo* info =
          ::testing::UnitTest::GetInstance()->current_test_info()) {
    name = absl::StrCat(info->test_suite_name(), ".", info->name());
  }
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      c = '_';
    }
  }
  absl::BitGen gen;
  return absl::StrFormat("conformance/%s-%016x/", name, absl::Uniform<uint64_t>(gen));
}

void RunConcurrently(int threads, const std::function<void(int)>& body) {
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (int i = 0; i < threads; ++i) pool.emplace_back(body, i);
  for (std::thread& t : pool) t.join();
}

void ExpectRoundTrip(BlockStore& store, const std::string& key, size_t size) {
  const std::string data = TestData(size, std::hash<std::string>()(key));
  ASSERT_OK(store.Put(key, data));
  absl::StatusOr<ObjectInfo> head = store.Head(key);
  ASSERT_OK(head);
  EXPECT_EQ(head->size, size);
  absl::StatusOr<std::string> got = store.Get(key);
  ASSERT_OK(got);
  EXPECT_TRUE(SameBytes(*got, data));
  if (size >= 3) {
    got = store.Get(key, size / 3, size / 3);
    ASSERT_OK(got);
    EXPECT_TRUE(SameBytes(*got, data.substr(size / 3, size / 3)));
  }
  absl::StatusOr<ListPage> page = store.List(key, "", 1000);
  ASSERT_OK(page);
  ASSERT_FALSE(page->objects.empty());
  EXPECT_EQ(page->objects[0].key, key);
  EXPECT_EQ(page->objects[0].size, size);
  ASSERT_OK(store.Delete(key));
  EXPECT_THAT(store.Get(key), StatusIs(absl::StatusCode::kNotFound));
}

void ExpectEveryOpFails(BlockStore& store, absl::StatusCode code, const std::string& key,
                        const std::vector<std::string>& secrets) {
  auto check = [&](const char* op, const absl::Status& s) {
    EXPECT_EQ(s.code(), code) << op << ": " << s;
    for (const std::string& secret : secrets) {
      if (secret.empty()) continue;
      EXPECT_FALSE(absl::StrContains(s.message(), secret))
          << op << " leaks a secret in its error message";
    }
  };
  check("Get", store.Get(key).status());
  check("Put", store.Put(key, "x"));
  check("Delete", store.Delete(key));
  check("Head", store.Head(key).status());
  check("List", store.List("", "", 10).status());
  check("Check", store.Check());
}

void BlockStoreConformance::SetUp() {
  store_ = GetParam().make();
  ASSERT_NE(store_, nullptr) << "factory '" << GetParam().name << "' made no store";
  prefix_ = UniqueTestPrefix();
}

std::string BlockStoreConformance::Key(std::string_view suffix) const {
  return absl::StrCat(prefix_, absl::string_view(suffix.data(), suffix.size()));
}

// Stores that are never instantiated in some test binary (one linking this library only for
// the helpers) must not fail that binary.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BlockStoreConformance);

TEST_P(BlockStoreConformance, CheckSucceeds) { ASSERT_OK(store_->Check()); }

TEST_P(BlockStoreConformance, DescribeIsAStoreUrl) {
  const std::string described = store_->Describe();
  EXPECT_OK(ParseStoreUrl(described)) << described;
}

TEST_P(BlockStoreConformance, PutGetRoundTrip) {
  const std::string data = TestData(100 * 1024 + 7, 1);
  ASSERT_OK(store_->Put(Key("obj"), data));
  absl::StatusOr<std::string> got = store_->Get(Key("obj"));
  ASSERT_OK(got);
  EXPECT_TRUE(SameBytes(*got, data));
}

TEST_P(BlockStoreConformance, RangeGet) {
  const std::string data = TestData(1000, 2);
  const std::string key = Key("range");
  ASSERT_OK(store_->Put(key, data));
  struct Case {
    uint64_t offset, length;
    std::string want;
  };
  const Case cases[] = {
      {0, 1000, data},
      {0, kToEnd, data},
      {10, 100, data.substr(10, 100)},    // inside
      {10, kToEnd, data.substr(10)},      // to the end
      {900, 500, data.substr(900)},       // runs past the end: short
      {999, 1, data.substr(999)},         // last byte
      {999, 2, data.substr(999)},
      {10, 0, ""},                        // empty range
      {1000, 10, ""},                     // at the end
      {1000, kToEnd, ""},
      {5000, 10, ""},                     // past the end
      {kToEnd - 1, kToEnd, ""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> got = store_->Get(key, c.offset, c.length);
    ASSERT_OK(got);
    EXPECT_TRUE(SameBytes(*got, c.want)) << "offset " << c.offset << " length " << c.length;
  }
}

TEST_P(BlockStoreConformance, HeadReportsSize) {
  for (size_t size : {0, 1, 4095, 4096, 4097, 1 << 20}) {
    const std::string key = Key(absl::StrCat("size-", size));
    ASSERT_OK(store_->Put(key, TestData(size, size)));
    absl::StatusOr<ObjectInfo> head = store_->Head(key);
    ASSERT_OK(head);
    EXPECT_EQ(head->size, size);
    EXPECT_EQ(head->key, key);
  }
}

TEST_P(BlockStoreConformance, MissingObjectIsNotFound) {
  EXPECT_THAT(store_->Get(Key("missing")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Get(Key("missing"), 10, 10), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Head(Key("missing")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Get(Key("no/such/folder/obj")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(BlockStoreConformance, DeleteThenGetIsNotFound) {
  const std::string key = Key("doomed");
  ASSERT_OK(store_->Put(key, "data"));
  ASSERT_OK(store_->Delete(key));
  EXPECT_THAT(store_->Get(key), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Head(key), StatusIs(absl::StatusCode::kNotFound));
  std::vector<ObjectInfo> listed = ListAll(*store_, prefix_, 1000);
  EXPECT_THAT(Keys(listed), IsEmpty());
}

TEST_P(BlockStoreConformance, DeleteMissingIsOk) {
  ASSERT_OK(store_->Delete(Key("never-written")));
  ASSERT_OK(store_->Put(Key("twice"), "x"));
  ASSERT_OK(store_->Delete(Key("twice")));
  ASSERT_OK(store_->Delete(Key("twice")));
}

TEST_P(BlockStoreConformance, EmptyAndOneByteObjects) {
  ASSERT_OK(store_->Put(Key("empty"), ""));
  ASSERT_OK(store_->Put(Key("one"), "z"));
  absl::StatusOr<std::string> got = store_->Get(Key("empty"));
  ASSERT_OK(got);
  EXPECT_EQ(*got, "");
  got = store_->Get(Key("empty"), 0, 10);
  ASSERT_OK(got);
  EXPECT_EQ(*got, "");
  got = store_->Get(Key("one"));
  ASSERT_OK(got);
  EXPECT_EQ(*got, "z");
  got = store_->Get(Key("one"), 1, 1);
  ASSERT_OK(got);
  EXPECT_EQ(*got, "");
  absl::StatusOr<ObjectInfo> head = store_->Head(Key("empty"));
  ASSERT_OK(head);
  EXPECT_EQ(head->size, 0u);
  head = store_->Head(Key("one"));
  ASSERT_OK(head);
  EXPECT_EQ(head->size, 1u);
  std::vector<ObjectInfo> listed = ListAll(*store_, prefix_, 1000);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].key, Key("empty"));
  EXPECT_EQ(listed[0].size, 0u);
  EXPECT_EQ(listed[1].key, Key("one"));
  EXPECT_EQ(listed[1].size, 1u);
}

TEST_P(BlockStoreConformance, LargeObjectIsByteExact) {
  if (!GetParam().run_large) GTEST_SKIP() << "run_large is off for " << GetParam().name;
  constexpr size_t kSize = 64 << 20;
  const std::string data = TestData(kSize, 64);
  const std::string key = Key("large");
  ASSERT_OK(store_->Put(key, data));
  absl::StatusOr<ObjectInfo> head = store_->Head(key);
  ASSERT_OK(head);
  EXPECT_EQ(head->size, kSize);
  absl::StatusOr<std::string> got = store_->Get(key);
  ASSERT_OK(got);
  EXPECT_TRUE(SameBytes(*got, data));
  got = store_->Get(key, kSize - (1 << 20) - 3, 2 << 20);  // spans the end
  ASSERT_OK(got);
  EXPECT_TRUE(SameBytes(*got, data.substr(kSize - (1 << 20) - 3)));
}

TEST_P(BlockStoreConformance, ListPaginatesManyKeys) {
  constexpr int kKeys = 2500;
  constexpr int kThreads = 32;  // also keeps a folder store's fsyncs batched
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(Key(absl::StrFormat("many/%05d", i)));
  std::atomic<int> failures{0};
  RunConcurrently(kThreads, [&](int t) {
    for (int i = t; i < kKeys; i += kThreads) {
      if (!store_->Put(keys[i], std::to_string(i)).ok()) ++failures;
    }
  });
  ASSERT_EQ(failures.load(), 0);
  int pages = 0;
  std::vector<ObjectInfo> listed = ListAll(*store_, Key("many/"), 1000, &pages);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(listed.size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {  // `keys` is sorted: every key exactly once, in order
    ASSERT_EQ(listed[i].key, keys[i]) << "at position " << i;
    EXPECT_EQ(listed[i].size, std::to_string(i).size());
  }
}

TEST_P(BlockStoreConformance, ListSmallPages) {
  std::vector<std::string> keys = {Key("p/a"), Key("p/b/c"), Key("p/b/d"), Key("p/c"),
                                   Key("p/d/e/f")};
  for (const std::string& k : keys) ASSERT_OK(store_->Put(k, k));
  for (int max_keys : {1, 2, 3}) {
    int pages = 0;
    std::vector<ObjectInfo> listed = ListAll(*store_, Key("p/"), max_keys, &pages);
    EXPECT_EQ(Keys(listed), keys) << "max_keys " << max_keys;
    EXPECT_GE(pages, static_cast<int>((keys.size() + max_keys - 1) / max_keys));
  }
}

TEST_P(BlockStoreConformance, ListFiltersByPrefix) {
  for (const char* k : {"a/1", "a/2", "a-x", "ab/1", "b/1", "b/a/1"}) {
    ASSERT_OK(store_->Put(Key(k), k));
  }
  EXPECT_THAT(Keys(ListAll(*store_, Key("a/"), 1000)), ElementsAre(Key("a/1"), Key("a/2")));
  EXPECT_THAT(Keys(ListAll(*store_, Key("a"), 1000)),
              ElementsAre(Key("a-x"), Key("a/1"), Key("a/2"), Key("ab/1")));
  EXPECT_THAT(Keys(ListAll(*store_, Key("b/a"), 1000)), ElementsAre(Key("b/a/1")));
  EXPECT_THAT(Keys(ListAll(*store_, Key("a/1"), 1000)), ElementsAre(Key("a/1")));
  EXPECT_THAT(Keys(ListAll(*store_, Key("c"), 1000)), IsEmpty());
  EXPECT_THAT(Keys(ListAll(*store_, Key("zz/y/"), 1000)), IsEmpty());
  EXPECT_EQ(ListAll(*store_, prefix_, 1000).size(), 6u);
}

TEST_P(BlockStoreConformance, ListOrderIsBytewise) {
  // '-' < '.' < '/' < '0' < 'B' < '_' < 'a': a folder store must order "a/..." between "a.x"
  // and "a0", as object stores do, not list folders first or last.
  std::vector<std::string> keys;
  for (const char* k : {"a0", "a/c/d", "a_", "a.x", "B", "a/b", "a-c", "ab"}) {
    keys.push_back(Key(k));
    ASSERT_OK(store_->Put(keys.back(), k));
  }
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(Keys(ListAll(*store_, prefix_, 1000)), keys);
  EXPECT_EQ(Keys(ListAll(*store_, prefix_, 1)), keys);
}

TEST_P(BlockStoreConformance, ConcurrentPutsFromManyThreads) {
  constexpr int kThreads = 32;
  std::vector<absl::Status> results(kThreads);
  RunConcurrently(kThreads, [&](int t) {
    results[t] = store_->Put(Key(absl::StrCat("concurrent/", t)), TestData(64 * 1024 + t, t));
  });
  for (int t = 0; t < kThreads; ++t) ASSERT_OK(results[t]);
  for (int t = 0; t < kThreads; ++t) {
    absl::StatusOr<std::string> got = store_->Get(Key(absl::StrCat("concurrent/", t)));
    ASSERT_OK(got);
    EXPECT_TRUE(SameBytes(*got, TestData(64 * 1024 + t, t))) << "thread " << t;
  }
  EXPECT_EQ(ListAll(*store_, Key("concurrent/"), 1000).size(), static_cast<size_t>(kThreads));
}

TEST_P(BlockStoreConformance, ConcurrentPutsOfOneKey) {
  // Retries and racing writers of the same block put identical bytes; all must succeed and
  // the object must be whole.
  constexpr int kThreads = 8;
  const std::string data = TestData(256 * 1024, 8);
  std::vector<absl::Status> results(kThreads);
  RunConcurrently(kThreads, [&](int t) { results[t] = store_->Put(Key("same"), data); });
  for (int t = 0; t < kThreads; ++t) ASSERT_OK(results[t]);
  absl::StatusOr<std::string> got = store_->Get(Key("same"));
  ASSERT_OK(got);
  EXPECT_TRUE(SameBytes(*got, data));
  EXPECT_EQ(ListAll(*store_, prefix_, 1000).size(), 1u);
}

TEST_P(BlockStoreConformance, PutIsIdempotent) {
  ASSERT_OK(store_->Put(Key("again"), "same bytes"));
  ASSERT_OK(store_->Put(Key("again"), "same bytes"));
  absl::StatusOr<std::string> got = store_->Get(Key("again"));
  ASSERT_OK(got);
  EXPECT_EQ(*got, "same bytes");
}

TEST_P(BlockStoreConformance, PrefixOfAKeyIsNotAnObject) {
  ASSERT_OK(store_->Put(Key("dir/obj"), "x"));
  EXPECT_THAT(store_->Get(Key("dir")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Head(Key("dir")), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(store_->Delete(Key("dir")));
  absl::StatusOr<std::string> got = store_->Get(Key("dir/obj"));
  ASSERT_OK(got);
  EXPECT_EQ(*got, "x");
}

TEST_P(BlockStoreConformance, InvalidKeysAreRejected) {
  const std::string bad[] = {"",          "/abs",         "a//b",      "../x", "a/../b",
                             "a/./b",     "trailing/",    "sp ace",    "a\\b", "q?x",
                             "pct%2F",    ".nighfs-tmp.1", "a\nb",     std::string(1025, 'k')};
  for (const std::string& suffix : bad) {
    // Rejected on their own and below the case prefix.
    for (const std::string& key : {suffix, Key(suffix)}) {
      EXPECT_THAT(store_->Put(key, "x"), StatusIs(absl::StatusCode::kInvalidArgument)) << key;
      EXPECT_THAT(store_->Get(key), StatusIs(absl::StatusCode::kInvalidArgument)) << key;
      EXPECT_THAT(store_->Head(key), StatusIs(absl::StatusCode::kInvalidArgument)) << key;
      EXPECT_THAT(store_->Delete(key), StatusIs(absl::StatusCode::kInvalidArgument)) << key;
    }
  }
}

TEST_P(BlockStoreConformance, BlockKeyLayout) {
  EXPECT_EQ(BlockKey(0), "blk/00/0000000000000000");
  EXPECT_EQ(BlockKey(0x0123456789abcdefull), "blk/ef/0123456789abcdef");
  EXPECT_EQ(BlockKey(~0ull), "blk/ff/ffffffffffffffff");
  std::set<std::string> folders;
  for (uint64_t id = 0; id < 1024; ++id) {
    const std::string key = BlockKey(id);
    ASSERT_OK(ValidateKey(key));
    folders.insert(key.substr(0, key.rfind('/')));
  }
  EXPECT_EQ(folders.size(), 256u);  // spread over every folder
  // The store accepts block keys and lists one folder of them in id order.
  std::vector<std::string> want;
  for (uint64_t id : {0x3ef, 0x1ef, 0x2ef, 0x2ee}) {
    ASSERT_OK(store_->Put(Key(BlockKey(id)), std::to_string(id)));
  }
  EXPECT_THAT(Keys(ListAll(*store_, Key("blk/ef/"), 1000)),
              ElementsAre(Key(BlockKey(0x1ef)), Key(BlockKey(0x2ef)), Key(BlockKey(0x3ef))));
  absl::StatusOr<std::string> got = store_->Get(Key(BlockKey(0x2ee)));
  ASSERT_OK(got);
  EXPECT_EQ(*got, std::to_string(0x2ee));
}

}  // namespace nighfs::blockstore::conformance
