#include "stored/mvcc/storage_format.h"

namespace rusd::stored::format {

namespace {
void AppendU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}
uint64_t ReadU64(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}
void AppendEscaped(std::string* out, std::string_view key) {
  out->reserve(out->size() + key.size() + 2);
  for (char c : key) {
    out->push_back(c);
    if (c == '\0') out->push_back('\xff');
  }
}
}  // namespace

std::string EncodeU64(uint64_t v) {
  std::string out;
  AppendU64(&out, v);
  return out;
}

bool DecodeU64(std::string_view in, uint64_t* v) {
  if (in.size() != 8) return false;
  *v = ReadU64(in);
  return true;
}

std::string EncodeRevision(int64_t main, int64_t sub) {
  std::string out;
  out.reserve(16);
  AppendU64(&out, static_cast<uint64_t>(main));
  AppendU64(&out, static_cast<uint64_t>(sub));
  return out;
}

RevisionBytes EncodeRevisionBytes(int64_t main, int64_t sub) {
  RevisionBytes out;
  for (int i = 0; i < 8; ++i) {
    out.bytes[i] = static_cast<char>((static_cast<uint64_t>(main) >> (56 - 8 * i)) & 0xff);
    out.bytes[8 + i] = static_cast<char>((static_cast<uint64_t>(sub) >> (56 - 8 * i)) & 0xff);
  }
  return out;
}

bool DecodeRevision(std::string_view in, int64_t* main, int64_t* sub) {
  if (in.size() != 16) return false;
  *main = static_cast<int64_t>(ReadU64(in.substr(0, 8)));
  *sub = static_cast<int64_t>(ReadU64(in.substr(8, 8)));
  return true;
}

std::string EscapeKeyBound(std::string_view user_key) {
  std::string out;
  AppendEscaped(&out, user_key);
  return out;
}

std::string HistoryKeyPrefix(std::string_view user_key) {
  std::string out;
  AppendEscaped(&out, user_key);
  out.push_back('\0');
  out.push_back('\x01');
  return out;
}

std::string HistoryKeyAfter(std::string_view user_key) {
  std::string out;
  AppendEscaped(&out, user_key);
  out.push_back('\0');
  out.push_back('\x02');
  return out;
}

std::string HistoryKey(std::string_view user_key, int64_t main, int64_t sub) {
  std::string out = HistoryKeyPrefix(user_key);
  AppendU64(&out, static_cast<uint64_t>(main));
  AppendU64(&out, static_cast<uint64_t>(sub));
  return out;
}

const std::string& HistoryKeyInto(std::string* out, std::string_view user_key, int64_t main,
                                  int64_t sub) {
  out->clear();
  AppendEscaped(out, user_key);
  out->push_back('\0');
  out->push_back('\x01');
  AppendU64(out, static_cast<uint64_t>(main));
  AppendU64(out, static_cast<uint64_t>(sub));
  return *out;
}

bool DecodeHistoryKey(std::string_view in, std::string* user_key, int64_t* main, int64_t* sub) {
  if (in.size() < 18) return false;
  std::string_view escaped = in.substr(0, in.size() - 16);
  // escaped = E(key) 00 01
  if (escaped[escaped.size() - 2] != '\0' || escaped[escaped.size() - 1] != '\x01') return false;
  escaped.remove_suffix(2);
  user_key->clear();
  user_key->reserve(escaped.size());
  for (size_t i = 0; i < escaped.size(); ++i) {
    char c = escaped[i];
    if (c == '\0') {
      if (i + 1 >= escaped.size() || escaped[i + 1] != '\xff') return false;
      ++i;
    }
    user_key->push_back(c);
  }
  return DecodeRevision(in.substr(in.size() - 16), main, sub);
}

}  // namespace rusd::stored::format
