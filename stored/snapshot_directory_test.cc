// Snapshots of the store: checkpoints at an applied index, keeping the newest two, and the
// install that swaps a checkpoint in as the store, including crashes between its steps.
// Real RocksDB in a temp dir.
#include "stored/snapshot_directory.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "rusd/internal.pb.h"
#include "stored/mvcc/kv_store.h"

namespace rusd::stored {
namespace {

namespace fs = std::filesystem;

class SnapshotDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    member_ = (fs::temp_directory_path() /
               ("snapshot_test_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                  .string();
    fs::remove_all(member_);
    fs::create_directories(member_);
  }
  void TearDown() override { fs::remove_all(member_); }

  std::unique_ptr<KvStore> OpenStore(const std::string& dir) {
    auto s = KvStore::Open(dir, KvStoreOptions{});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::string StoreDir() const { return member_ + "/store"; }

  // Applies puts k<i> = <tag><i> for indexes [first, last].
  static void Put(KvStore& store, uint64_t first, uint64_t last, const std::string& tag) {
    std::vector<internal::Entry> entries;
    for (uint64_t i = first; i <= last; ++i) {
      internal::Command c;
      c.mutable_put()->set_key("k" + std::to_string(i));
      c.mutable_put()->set_value(tag + std::to_string(i));
      internal::Entry e;
      e.set_index(i);
      e.set_term(3);
      e.set_type(internal::Entry::NORMAL);
      e.set_data(c.SerializeAsString());
      entries.push_back(std::move(e));
    }
    auto out = store.ApplyEntries(entries);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
  }
  static std::string Get(KvStore& store, const std::string& key) {
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    auto bytes = store.Range(req);
    if (!bytes.ok()) return "<error>";
    etcdserverpb::RangeResponse resp;
    resp.ParseFromString(*bytes);
    return resp.kvs_size() == 0 ? "<none>" : resp.kvs(0).value();
  }

  // A store at applied index 10 (values "old") and a snapshot of another store at index 30
  // (values "new"), as raftd would have received it.
  std::string PrepareStoreAndReceivedSnapshot() {
    {
      auto store = OpenStore(StoreDir());
      Put(*store, 1, 10, "old");
    }
    const std::string leader_member = member_ + "/leader";
    fs::create_directories(leader_member);
    auto leader = OpenStore(leader_member + "/store");
    Put(*leader, 1, 30, "new");
    SnapshotDirectory dir(leader_member);
    EXPECT_TRUE(dir.Load().ok());
    auto made = dir.Create(*leader);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    const std::string received = member_ + "/snap/recv-30";
    fs::create_directories(member_ + "/snap");
    fs::rename(made->dir, received);
    return received;
  }

  std::string member_;
};

TEST_F(SnapshotDirectoryTest, CheckpointHoldsTheAppliedStateAndAMarker) {
  auto store = OpenStore(StoreDir());
  Put(*store, 1, 50, "v");
  SnapshotDirectory dir(member_);
  ASSERT_TRUE(dir.Load().ok());
  auto made = dir.Create(*store);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(made->index, 50u);
  EXPECT_EQ(made->term, 3u);
  EXPECT_EQ(made->dir, member_ + "/snap/db-0000000000000032");
  auto marker = ReadSnapshotMarker(made->dir);
  ASSERT_TRUE(marker.ok());
  EXPECT_EQ(marker->index, 50u);
  // Later writes do not reach the checkpoint.
  Put(*store, 51, 60, "later");
  auto copy = OpenStore(made->dir);
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->applied_index(), 50u);
  EXPECT_EQ(Get(*copy, "k7"), "v7");
  EXPECT_EQ(Get(*copy, "k55"), "<none>");
  // A second one at the same index is refused.
  EXPECT_EQ(dir.Create(*store).status().code(), StatusCode::kOk);  // index 60: fine
  EXPECT_EQ(dir.Create(*store).status().code(), StatusCode::kAlreadyExists);
}

TEST_F(SnapshotDirectoryTest, KeepsTheNewestTwoAndForgetsInterruptedWrites) {
  auto store = OpenStore(StoreDir());
  SnapshotDirectory dir(member_);
  ASSERT_TRUE(dir.Load().ok());
  for (uint64_t i = 1; i <= 4; ++i) {
    Put(*store, i * 10 - 9, i * 10, "v");
    ASSERT_TRUE(dir.Create(*store).ok());
  }
  std::vector<std::string> names;
  for (const auto& de : fs::directory_iterator(member_ + "/snap")) {
    names.push_back(de.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"db-000000000000001e", "db-0000000000000028"}));
  // A crash mid-write leaves a .tmp directory, or one without a marker: both go at Load.
  fs::create_directories(member_ + "/snap/db-0000000000000050.tmp");
  fs::create_directories(member_ + "/snap/db-0000000000000060");
  SnapshotDirectory again(member_);
  ASSERT_TRUE(again.Load().ok());
  ASSERT_TRUE(again.newest().has_value());
  EXPECT_EQ(again.newest()->index, 40u);
  EXPECT_FALSE(fs::exists(member_ + "/snap/db-0000000000000050.tmp"));
  EXPECT_FALSE(fs::exists(member_ + "/snap/db-0000000000000060"));
}

TEST_F(SnapshotDirectoryTest, InstallReplacesTheStore) {
  const std::string received = PrepareStoreAndReceivedSnapshot();
  ASSERT_TRUE(InstallSnapshotDir(member_, received, 30).ok());
  ASSERT_TRUE(RecoverInterruptedInstall(member_).ok());
  EXPECT_FALSE(fs::exists(received));
  EXPECT_FALSE(fs::exists(member_ + "/store.old"));
  auto store = OpenStore(StoreDir());
  EXPECT_EQ(store->applied_index(), 30u);
  EXPECT_EQ(Get(*store, "k5"), "new5");
  EXPECT_EQ(Get(*store, "k25"), "new25");
}

TEST_F(SnapshotDirectoryTest, InstallRefusesASnapshotOfAnotherIndex) {
  const std::string received = PrepareStoreAndReceivedSnapshot();
  EXPECT_EQ(InstallSnapshotDir(member_, received, 31).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(InstallSnapshotDir(member_, member_ + "/nowhere", 30).code(),
            StatusCode::kNotFound);
  auto store = OpenStore(StoreDir());
  EXPECT_EQ(store->applied_index(), 10u);
}

TEST_F(SnapshotDirectoryTest, CrashAfterMovingTheOldStoreAsideKeepsTheOldStore) {
  const std::string received = PrepareStoreAndReceivedSnapshot();
  ASSERT_TRUE(InstallSnapshotDir(member_, received, 30,
                                 [](InstallStep s) { return s != InstallStep::kOldMovedAside; })
                  .ok());
  EXPECT_FALSE(fs::exists(StoreDir()));  // the crash point: no store at all
  ASSERT_TRUE(RecoverInterruptedInstall(member_).ok());
  {
    auto store = OpenStore(StoreDir());
    EXPECT_EQ(store->applied_index(), 10u);  // the install did not happen
    EXPECT_EQ(Get(*store, "k5"), "old5");
  }
  // raftd re-sends the order: the snapshot is still there and installs.
  ASSERT_TRUE(InstallSnapshotDir(member_, received, 30).ok());
  auto store = OpenStore(StoreDir());
  EXPECT_EQ(store->applied_index(), 30u);
}

TEST_F(SnapshotDirectoryTest, CrashAfterTheSwapKeepsTheNewStore) {
  const std::string received = PrepareStoreAndReceivedSnapshot();
  ASSERT_TRUE(InstallSnapshotDir(member_, received, 30,
                                 [](InstallStep s) { return s != InstallStep::kNewInPlace; })
                  .ok());
  EXPECT_TRUE(fs::exists(member_ + "/store.old"));
  ASSERT_TRUE(RecoverInterruptedInstall(member_).ok());
  EXPECT_FALSE(fs::exists(member_ + "/store.old"));
  auto store = OpenStore(StoreDir());
  EXPECT_EQ(store->applied_index(), 30u);
  EXPECT_EQ(Get(*store, "k25"), "new25");
}

TEST_F(SnapshotDirectoryTest, GarbageMarkerIsNotASnapshot) {
  fs::create_directories(member_ + "/snap/db-0000000000000001");
  std::ofstream(member_ + "/snap/db-0000000000000001/RUSD_SNAPSHOT") << "garbage";
  EXPECT_EQ(ReadSnapshotMarker(member_ + "/snap/db-0000000000000001").status().code(),
            StatusCode::kDataLoss);
  SnapshotDirectory dir(member_);
  ASSERT_TRUE(dir.Load().ok());
  EXPECT_FALSE(dir.newest().has_value());
}

}  // namespace
}  // namespace rusd::stored
