#include "supervisor/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace rusd::supervisor {
namespace {

TEST(ChildProcess, ExecFailureIsReportedNotAnExit127) {
  auto pid = SpawnChild("/nonexistent/rusd-raftd", {}, ::getpid());
  ASSERT_FALSE(pid.ok());
  EXPECT_EQ(pid.status().message(), "exec /nonexistent/rusd-raftd: No such file or directory");
}

TEST(ChildProcess, RunsWithArgumentsAndReportsTheExit) {
  auto pid = SpawnChild("/bin/sh", {"-c", "exit 7"}, ::getpid());
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  int status = 0;
  ASSERT_EQ(::waitpid(*pid, &status, 0), *pid);
  EXPECT_EQ(DescribeExit(status), "exited with code 7");
}

TEST(ChildProcess, ChildStartsWithAnEmptySignalMask) {
  // The supervisor blocks SIGTERM; a child must not inherit that, or it could never be
  // stopped with SIGTERM.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(::sigprocmask(SIG_BLOCK, &block, &old), 0);
  char tmpl[] = "/tmp/rusd_child_test_XXXXXX";
  int fd = ::mkstemp(tmpl);
  ::close(fd);
  auto pid = SpawnChild("/bin/sh", {"-c", std::string("grep SigBlk /proc/self/status > ") + tmpl},
                        ::getpid());
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(pid.ok());
  int status = 0;
  ::waitpid(*pid, &status, 0);
  std::ifstream in(tmpl);
  std::string line;
  std::getline(in, line);
  ::unlink(tmpl);
  EXPECT_EQ(line, "SigBlk:\t0000000000000000");
}

TEST(ChildProcess, ChildOfAWrongParentDoesNotRun) {
  // Passing a pid that is not our own simulates "the supervisor died before prctl".
  auto pid = SpawnChild("/bin/sh", {"-c", "exit 0"}, ::getpid() + 1000000);
  ASSERT_TRUE(pid.ok());
  int status = 0;
  ASSERT_EQ(::waitpid(*pid, &status, 0), *pid);
  EXPECT_EQ(DescribeExit(status), "exited with code 1");
}

TEST(ChildProcess, DescribesSignals) {
  auto pid = SpawnChild("/bin/sh", {"-c", "kill -9 $$"}, ::getpid());
  ASSERT_TRUE(pid.ok());
  int status = 0;
  ::waitpid(*pid, &status, 0);
  EXPECT_EQ(DescribeExit(status), "was killed by signal 9 (Killed)");
}

}  // namespace
}  // namespace rusd::supervisor
