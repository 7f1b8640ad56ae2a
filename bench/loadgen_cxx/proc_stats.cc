#include "bench/loadgen_cxx/proc_stats.h"

#include <dirent.h>
#include <sys/resource.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace rusd::loadgen {

Result<int64_t> CpuTicksOf(int pid) {
  auto stat_fields = [](int p, std::string* text) -> bool {
    std::ifstream f("/proc/" + std::to_string(p) + "/stat");
    if (!f) return false;
    std::getline(f, *text);
    auto close = text->rfind(')');
    if (close == std::string::npos) return false;
    *text = text->substr(close + 1);
    return true;
  };
  std::vector<int> pids{pid};
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      int p = std::atoi(e->d_name);
      if (p <= 0) continue;
      std::string rest;
      if (!stat_fields(p, &rest)) continue;
      std::istringstream in(rest);
      std::string state;
      int ppid = 0;
      in >> state >> ppid;
      if (ppid == pid) pids.push_back(p);
    }
    closedir(d);
  }
  int64_t total = 0;
  for (int p : pids) {
    std::string rest;
    if (!stat_fields(p, &rest))
      return Status::NotFound("/proc/" + std::to_string(p) + "/stat unreadable");
    std::istringstream in(rest);
    std::vector<std::string> f;
    for (std::string w; in >> w;) f.push_back(w);
    if (f.size() < 13) return Status::Internal("/proc/" + std::to_string(p) + "/stat: short");
    total += std::stoll(f[11]) + std::stoll(f[12]);  // utime, stime
  }
  return total;
}

Result<int64_t> CpuTicksOfAll(const std::vector<int>& pids) {
  int64_t total = 0;
  for (int p : pids) {
    auto t = CpuTicksOf(p);
    if (!t.ok()) return t.status();
    total += t.value();
  }
  return total;
}

Result<int64_t> RssKiBOf(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  if (!f) return Status::NotFound("/proc/" + std::to_string(pid) + "/status unreadable");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return Status::NotFound("no VmRSS in /proc/" + std::to_string(pid) + "/status");
}

double CpuSecondsOfSelf() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

}  // namespace rusd::loadgen
