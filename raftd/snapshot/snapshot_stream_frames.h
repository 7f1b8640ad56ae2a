// Test-only: hand-made frames of the snapshot stream (the layout in snapshot_transfer.h), for
// tests that play a leader streaming a snapshot byte by byte, including broken streams a
// real sender never writes.
#pragma once

#include <cstdint>
#include <string>

#include "common/crc32c.h"
#include "raftd/wal/wal_format.h"

namespace rusd::raftd::stream_frames {

inline std::string Frame(uint8_t kind, const std::string& body) {
  std::string f(4, '\0');
  wal::PutU32(f.data(), static_cast<uint32_t>(body.size() + 1));
  f.push_back(static_cast<char>(kind));
  return f + body;
}
inline std::string U32(uint32_t v) {
  std::string s;
  wal::AppendU32(&s, v);
  return s;
}
inline std::string U64(uint64_t v) {
  std::string s;
  wal::AppendU64(&s, v);
  return s;
}
// A length-prefixed string.
inline std::string Str(const std::string& s) { return U32(static_cast<uint32_t>(s.size())) + s; }
// One whole file: File, one Chunk, FileEnd.
inline std::string FileFrames(const std::string& name, const std::string& data) {
  const uint32_t crc = Crc32c(data.data(), data.size());
  return Frame(17, Str(name) + U64(data.size())) + Frame(18, U32(crc) + data) +
         Frame(19, U32(crc));
}
inline std::string DoneFrame() { return Frame(20, ""); }

}  // namespace rusd::raftd::stream_frames
