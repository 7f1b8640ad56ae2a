// Shared by the fuzz targets in tests/fuzz/:
// - RUSD_FUZZ_CHECK: the invariants a target checks beyond "no crash" (an input a parser
//   refuses must be refused with a message an operator can act on, what decodes re-encodes).
//   A failed check aborts, which libFuzzer and the replay driver both report as a crash
//   with the input that caused it.
// - ScratchDir: a per-process directory for targets whose parser reads files, on tmpfs
//   when there is one (fuzzing writes files millions of times). Removed at exit.
#pragma once

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#define RUSD_FUZZ_CHECK(cond)                                                              \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

namespace rusd::fuzz {

class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    const char* base = std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp";
    std::string tmpl = std::string(base) + "/rusd-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  // Empties the directory (each input starts from nothing).
  void Clear() const {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(path_, ec)) {
      std::filesystem::remove_all(e.path(), ec);
    }
  }

 private:
  std::string path_;
};

// Writes `bytes` to `path`, creating its parent directories.
inline void WriteFile(const std::string& path, std::string_view bytes) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) std::abort();
}

}  // namespace rusd::fuzz
