#include "ipc/metrics_process.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace rusd::ipc {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Seconds since the epoch at boot (/proc/stat "btime"), read once per call: cheap enough at
// scrape rate, and never stale across a clock change.
double BootTimeSeconds() {
  std::string stat = ReadFile("/proc/stat");
  auto at = stat.find("\nbtime ");
  if (at == std::string::npos) return 0;
  return std::strtod(stat.c_str() + at + 7, nullptr);
}

}  // namespace

std::optional<ProcessStats> ReadProcessStats(int pid) {
  if (pid <= 0) return std::nullopt;
  const std::string dir = "/proc/" + std::to_string(pid);
  std::string stat = ReadFile(dir + "/stat");
  // "pid (comm) state ppid ..."; comm may hold spaces and parentheses: parse after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));
  std::string f[22];  // fields 3..24 of proc(5)
  for (auto& s : f) fields >> s;
  if (!fields) return std::nullopt;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  ProcessStats out;
  // proc(5): utime is field 14, stime 15, starttime 22, vsize 23, rss 24; f[0] is field 3.
  out.cpu_seconds =
      (std::strtod(f[11].c_str(), nullptr) + std::strtod(f[12].c_str(), nullptr)) / ticks;
  out.start_time_seconds = BootTimeSeconds() + std::strtod(f[19].c_str(), nullptr) / ticks;
  out.virtual_memory_bytes = std::strtod(f[20].c_str(), nullptr);
  out.resident_memory_bytes = std::strtod(f[21].c_str(), nullptr) * page;

  if (DIR* d = ::opendir((dir + "/fd").c_str())) {
    int n = 0;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
    out.open_fds = n;
  }
  std::string limits = ReadFile(dir + "/limits");
  auto at = limits.find("Max open files");
  if (at != std::string::npos) {
    out.max_fds = std::strtod(limits.c_str() + at + std::strlen("Max open files"), nullptr);
  }
  return out;
}

}  // namespace rusd::ipc
