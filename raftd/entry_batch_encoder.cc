#include "raftd/entry_batch_encoder.h"

namespace rusd::raftd {
namespace {

// Field tags of rusd.internal.Entry / EntryBatch (field number << 3 | wire type).
constexpr char kBatchEntriesTag = (1 << 3) | 2;  // EntryBatch.entries, length-delimited
constexpr char kIndexTag = (1 << 3) | 0;         // Entry.index, varint
constexpr char kTermTag = (2 << 3) | 0;          // Entry.term, varint
constexpr char kTypeTag = (3 << 3) | 0;          // Entry.type, varint (enum)
constexpr char kDataTag = (4 << 3) | 2;          // Entry.data, bytes

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// proto3 omits fields holding their default value; parsers accept either form, we match
// what protobuf itself writes.
size_t EntryBodySize(const raft::Entry& e) {
  size_t n = 0;
  if (e.index != 0) n += 1 + VarintSize(e.index);
  if (e.term != 0) n += 1 + VarintSize(e.term);
  if (e.type != raft::EntryType::kNormal) n += 1 + VarintSize(static_cast<uint64_t>(e.type));
  if (!e.data.empty()) n += 1 + VarintSize(e.data.size()) + e.data.size();
  return n;
}

}  // namespace

size_t EncodedEntrySize(const raft::Entry& e) {
  const size_t body = EntryBodySize(e);
  return 1 + VarintSize(body) + body;
}

void AppendEntryToBatch(const raft::Entry& e, std::string* out) {
  out->push_back(kBatchEntriesTag);
  PutVarint(EntryBodySize(e), out);
  if (e.index != 0) {
    out->push_back(kIndexTag);
    PutVarint(e.index, out);
  }
  if (e.term != 0) {
    out->push_back(kTermTag);
    PutVarint(e.term, out);
  }
  if (e.type != raft::EntryType::kNormal) {
    out->push_back(kTypeTag);
    PutVarint(static_cast<uint64_t>(e.type), out);
  }
  if (!e.data.empty()) {
    out->push_back(kDataTag);
    PutVarint(e.data.size(), out);
    out->append(e.data);
  }
}

}  // namespace rusd::raftd
