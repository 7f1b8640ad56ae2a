// Builds the payload of kCommittedEntries frames (rusd.internal.EntryBatch) straight from
// the Raft log: the protobuf wire format is written by hand into one reused buffer, so a
// frame of a thousand entries costs one buffer and one copy of each entry's data, not a
// thousand message objects. Tests check the bytes parse as rusd.internal.EntryBatch.
#pragma once

#include <cstddef>
#include <string>

#include "raftd/raft/messages.h"

namespace rusd::raftd {

// Bytes AppendEntryToBatch adds for `e`.
size_t EncodedEntrySize(const raft::Entry& e);
// Appends `e` as one `entries` field (number 1) of an EntryBatch.
void AppendEntryToBatch(const raft::Entry& e, std::string* out);

}  // namespace rusd::raftd
