#include "bench/loadgen_cxx/watch_wire.h"

namespace rusd::loadgen {
namespace {

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutBytes(std::string& out, int field, std::string_view b) {
  PutVarint(out, static_cast<uint64_t>(field) << 3 | 2);
  PutVarint(out, b.size());
  out.append(b);
}

std::string Frame(const std::string& message) {
  std::string f(5, '\0');
  const size_t n = message.size();
  f[1] = static_cast<char>((n >> 24) & 0xff);
  f[2] = static_cast<char>((n >> 16) & 0xff);
  f[3] = static_cast<char>((n >> 8) & 0xff);
  f[4] = static_cast<char>(n & 0xff);
  return f + message;
}

// A cursor over one message's fields.
class FieldReader {
 public:
  explicit FieldReader(std::string_view b)
      : p_(reinterpret_cast<const uint8_t*>(b.data())), end_(p_ + b.size()) {}

  bool done() const { return p_ == end_; }

  // Reads the next field's header and value: varints into *v, length-delimited into *bytes
  // (fixed32/64 are stepped over). False on malformed input.
  bool Next(uint32_t* field, uint32_t* wire, uint64_t* v, std::string_view* bytes) {
    uint64_t tag;
    if (!Varint(&tag)) return false;
    *field = static_cast<uint32_t>(tag >> 3);
    *wire = static_cast<uint32_t>(tag & 7);
    switch (*wire) {
      case 0:
        return Varint(v);
      case 2: {
        uint64_t len;
        if (!Varint(&len) || len > static_cast<uint64_t>(end_ - p_)) return false;
        *bytes = std::string_view(reinterpret_cast<const char*>(p_), len);
        p_ += len;
        return true;
      }
      case 1:
        return Skip(8);
      case 5:
        return Skip(4);
      default:
        return false;
    }
  }

 private:
  bool Varint(uint64_t* v) {
    uint64_t x = 0;
    for (int i = 0; i < 10 && p_ < end_; ++i) {
      const uint8_t b = *p_++;
      x |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if (b < 0x80) {
        *v = x;
        return true;
      }
    }
    return false;
  }
  bool Skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace

std::string WatchCreateFrame(std::string_view key, std::string_view range_end) {
  std::string create;
  PutBytes(create, 1, key);
  if (!range_end.empty()) PutBytes(create, 2, range_end);
  std::string req;
  PutBytes(req, 1, create);
  return Frame(req);
}

std::string PutFrame(std::string_view key, std::string_view value) {
  std::string req;
  PutBytes(req, 1, key);
  PutBytes(req, 2, value);
  return Frame(req);
}

bool ScanWatchResponse(std::string_view message, ScannedWatchResponse* out, const char** why) {
  *out = ScannedWatchResponse{};
  FieldReader r(message);
  while (!r.done()) {
    uint32_t field, wire;
    uint64_t v = 0;
    std::string_view b;
    if (!r.Next(&field, &wire, &v, &b)) {
      *why = "malformed WatchResponse";
      return false;
    }
    if (wire == 0) {
      switch (field) {
        case 2: out->watch_id = static_cast<int64_t>(v); break;
        case 3: out->created = v != 0; break;
        case 4: out->canceled = v != 0; break;
        case 5: out->compact_revision = static_cast<int64_t>(v); break;
        default: break;
      }
    } else if (wire == 2) {
      if (field == 6) out->cancel_reason = b;
      if (field == 11) ++out->events;
    }
  }
  return true;
}

bool DecodeWatchEvents(std::string_view message, std::vector<WatchEventKv>* out,
                       const char** why) {
  out->clear();
  FieldReader r(message);
  while (!r.done()) {
    uint32_t field, wire;
    uint64_t v = 0;
    std::string_view event;
    if (!r.Next(&field, &wire, &v, &event)) {
      *why = "malformed WatchResponse";
      return false;
    }
    if (field != 11 || wire != 2) continue;
    WatchEventKv e;
    FieldReader er(event);
    while (!er.done()) {
      std::string_view kv;
      if (!er.Next(&field, &wire, &v, &kv)) {
        *why = "malformed Event";
        return false;
      }
      if (field != 2 || wire != 2) continue;  // type (1), prev_kv (3)
      e.has_kv = true;
      FieldReader kr(kv);
      while (!kr.done()) {
        std::string_view bytes;
        if (!kr.Next(&field, &wire, &v, &bytes)) {
          *why = "malformed KeyValue";
          return false;
        }
        if (field == 1 && wire == 2) e.key = bytes;
        if (field == 3 && wire == 0) e.mod_revision = static_cast<int64_t>(v);
        if (field == 5 && wire == 2) e.value = bytes;
      }
    }
    out->push_back(e);
  }
  return true;
}

}  // namespace rusd::loadgen
