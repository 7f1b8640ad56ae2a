// An exclusive flock on <data-dir>/rusd.lock, held for the supervisor's whole life.
//
// It tells a live node from a stale one: the kernel drops the lock when the holder dies
// (even by SIGKILL), so a second rusd on the same data directory fails at once with a
// clear error, while a rusd started after a crash simply takes the lock again. The file
// holds the holder's pid (informational, for the error message). The descriptor is
// O_CLOEXEC: the components must not inherit the lock, or a stray child would keep a dead
// supervisor's data directory "in use".
//
// Created and destroyed by the supervisor's main thread.
#pragma once

#include <string>

#include "common/status.h"

namespace rusd::supervisor {

class DataDirLock {
 public:
  // FailedPrecondition when another live process holds the lock; IoError otherwise.
  static Result<DataDirLock> Acquire(const std::string& data_dir);

  DataDirLock(DataDirLock&& other) noexcept;
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();  // releases the lock (the file stays)

  const std::string& path() const { return path_; }

 private:
  DataDirLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

}  // namespace rusd::supervisor
