#include "stored/entry_batch_decoder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

namespace rusd::stored {

std::optional<size_t> DecodeEntryBatch(std::string_view payload,
                                       std::vector<internal::Entry>* slots, size_t first) {
  using google::protobuf::internal::WireFormatLite;
  // Protobuf's own limit on what one parse reads; a payload above it is refused by
  // ParseFromString too (never the case for ring frames, which are far smaller).
  if (payload.size() > static_cast<size_t>(INT32_MAX)) return std::nullopt;
  const auto* data = reinterpret_cast<const uint8_t*>(payload.data());
  google::protobuf::io::CodedInputStream in(data, static_cast<int>(payload.size()));
  size_t count = 0;
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) {
      // The end of the payload; or a zero tag or an unreadable varint, which protobuf
      // rejects (ConsumedEntireMessage is true only for the end).
      if (!in.ConsumedEntireMessage()) return std::nullopt;
      return count;
    }
    if (WireFormatLite::GetTagFieldNumber(tag) == 1 &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return std::nullopt;
      const int at = in.CurrentPosition();
      if (length > payload.size() - static_cast<size_t>(at)) return std::nullopt;
      const size_t slot = first + count;
      if (slot >= slots->size()) slots->emplace_back();
      if (!(*slots)[slot].ParseFromArray(data + at, static_cast<int>(length))) {
        return std::nullopt;
      }
      if (!in.Skip(static_cast<int>(length))) return std::nullopt;
      ++count;
      continue;
    }
    // Field number 0, an end-group tag without its start, or a field protobuf cannot skip:
    // invalid.
    if (WireFormatLite::GetTagFieldNumber(tag) == 0 ||
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_END_GROUP) {
      return std::nullopt;
    }
    if (!WireFormatLite::SkipField(&in, tag)) return std::nullopt;
  }
}

}  // namespace rusd::stored
