#include "supervisor/data_dir_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "supervisor/node_identity.h"

namespace rusd::supervisor {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/rusd_lock_test_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(DataDirLock, SecondHolderFailsWithClearError) {
  TempDir dir;
  auto first = DataDirLock::Acquire(dir.path());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  // flock locks belong to open file descriptions: a second open in this process conflicts
  // just as another process would.
  auto second = DataDirLock::Acquire(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("already in use by another rusd (pid " +
                                           std::to_string(::getpid()) + ")"),
            std::string::npos)
      << second.status().message();
}

TEST(DataDirLock, ReleasedOnDestructionAndAfterHolderDies) {
  TempDir dir;
  { ASSERT_TRUE(DataDirLock::Acquire(dir.path()).ok()); }
  EXPECT_TRUE(DataDirLock::Acquire(dir.path()).ok());

  // A holder killed by SIGKILL leaves a stale file, never a stale lock.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    auto lock = DataDirLock::Acquire(dir.path());
    char c = lock.ok() ? 'y' : 'n';
    ssize_t ignored = ::write(ready[1], &c, 1);
    (void)ignored;
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  EXPECT_FALSE(DataDirLock::Acquire(dir.path()).ok());
  ::kill(child, SIGKILL);
  int status;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(DataDirLock::Acquire(dir.path()).ok());
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(NodeIdentity, WrittenOnceAndKeptAcrossRestarts) {
  TempDir dir;
  auto first = LoadOrCreateNodeIdentity(
      dir.path(), {"default", 0x8e9e05c52164694dull, 0xcdf818194e3a8c32ull, false,
                   "default=http://localhost:2380", "etcd-cluster"});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->created);
  // A restart with other flags (e.g. another token) keeps the stored identity.
  auto second = LoadOrCreateNodeIdentity(dir.path(), {"default", 1, 2, false, "x=http://a:1", "t"});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->member_id, 0x8e9e05c52164694dull);
  EXPECT_EQ(second->cluster_id, 0xcdf818194e3a8c32ull);
  EXPECT_EQ(second->name, "default");
  // The bootstrap membership is kept too (it is the membership until conf changes exist).
  EXPECT_EQ(second->initial_cluster, "default=http://localhost:2380");
  EXPECT_EQ(second->initial_cluster_token, "etcd-cluster");
}

TEST(NodeIdentity, CorruptFileIsDataLossNotOverwritten) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/member");
  { std::ofstream(NodeIdentityPath(dir.path())) << "member_id=zz\n"; }
  auto id = LoadOrCreateNodeIdentity(dir.path(), {"default", 1, 2, false, "", ""});
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace rusd::supervisor
