// One-shot fault points for crash tests of multi-step disk protocols (the snapshot install
// across raftd and stored). A test arms point NAME by creating the file
// <dir>/fault-NAME; the process that reaches the point removes the file and dies at once
// (_exit, no cleanup, as a kill -9 there would), so its restart runs the recovery path.
// Unarmed, a point costs one failed unlink(2) on a rare path (never per request).
#pragma once

#include <unistd.h>

#include <string>

namespace rusd {

inline constexpr int kExitFaultPoint = 86;

inline void MaybeDieAtFaultPoint(const std::string& dir, const char* name) {
  std::string path = dir;
  path.append("/fault-").append(name);
  if (::unlink(path.c_str()) == 0) ::_exit(kExitFaultPoint);
}

}  // namespace rusd
