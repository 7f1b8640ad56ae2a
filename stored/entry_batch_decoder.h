// DecodeEntryBatch: the apply thread's decoder of a kCommittedEntries payload (the wire
// form of rusd.internal.EntryBatch), read in place (from the ring) into Entry objects that
// the caller keeps and reuses from batch to batch.
//
// Why not EntryBatch::ParseFromString: that copies the payload out of the ring first, then
// allocates an EntryBatch, one Entry and one data string per entry, and frees them all
// after the apply. Parsing each entry into a reused Entry (Entry::ParseFromArray clears it
// and assigns into the data string it already holds) makes the steady state allocation-free.
//
// Accepts exactly what EntryBatch::ParseFromString accepts (unknown fields, including a
// field 1 with another wire type, are skipped as protobuf keeps them as unknown), and
// decodes the same entries in the same order.
//
// Threads: none of its own; `slots` belongs to the caller.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "rusd/internal.pb.h"

namespace rusd::stored {

// Decodes the entries of `payload` into (*slots)[first], (*slots)[first + 1], ...,
// appending Entry objects to *slots only where it is too short; slots at and above `first`
// are overwritten, those below it are left alone. Returns the number of entries, or nullopt
// if `payload` is not a valid EntryBatch (slots from `first` on are then unspecified).
std::optional<size_t> DecodeEntryBatch(std::string_view payload,
                                       std::vector<internal::Entry>* slots, size_t first);

}  // namespace rusd::stored
