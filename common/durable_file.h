// Durable file system steps shared by every component that keeps small state files (the
// snapshot point, the member list, snapshot markers, received snapshots): fsync a directory
// so a rename or a new entry in it survives a crash, and replace a file atomically.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace rusd {

// fsync(2) of `path`, opened as a directory when `directory` (O_DIRECTORY) or a file.
Status SyncPath(const std::string& path, bool directory);
inline Status SyncDirectory(const std::string& dir) { return SyncPath(dir, true); }

// Writes `data` to `path` so that after a crash `path` holds either its old content or all
// of `data`: write to path.tmp, fdatasync, rename over `path`, fsync the directory.
Status WriteFileAtomically(const std::string& path, std::string_view data, int mode = 0600);

}  // namespace rusd
