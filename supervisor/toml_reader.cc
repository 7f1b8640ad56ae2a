#include "supervisor/toml_reader.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace rusd::supervisor {

const char* TomlValue::KindName(Kind k) {
  switch (k) {
    case Kind::kString: return "string";
    case Kind::kInteger: return "integer";
    case Kind::kBoolean: return "boolean";
    case Kind::kStringArray: return "array of strings";
  }
  return "?";
}

namespace {

bool IsBareKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A cursor over the whole text. Every error carries the line the cursor is on.
class Parser {
 public:
  Parser(const std::string& text, const std::string& source) : text_(text), source_(source) {}

  Result<TomlDocument> Run() {
    std::string table;  // current table, "" = root
    doc_.tables[""];
    while (true) {
      SkipBlankAndComments(/*newlines=*/true);
      if (AtEnd()) break;
      if (Peek() == '[') {
        int header_line = line_;
        ++pos_;
        SkipSpaces();
        if (!AtEnd() && Peek() == '[') return Error("arrays of tables ([[...]]) are not supported");
        auto name = ParseKey();
        if (!name.ok()) return name.status();
        SkipSpaces();
        if (!AtEnd() && Peek() == '.') return Error("nested tables are not supported");
        if (AtEnd() || Peek() != ']') return Error("expected ']' after table name");
        ++pos_;
        RUSD_RETURN_IF_ERROR(ExpectLineEnd());
        table = *name;
        if (doc_.table_lines.count(table) != 0) {
          return Error("table [" + table + "] is defined twice (first on line " +
                       std::to_string(doc_.table_lines[table]) + ")", header_line);
        }
        doc_.table_lines[table] = header_line;
        doc_.tables[table];
        continue;
      }
      int key_line = line_;
      auto key = ParseKey();
      if (!key.ok()) return key.status();
      SkipSpaces();
      if (!AtEnd() && Peek() == '.') return Error("dotted keys are not supported");
      if (AtEnd() || Peek() != '=') return Error("expected '=' after key '" + *key + "'");
      ++pos_;
      SkipSpaces();
      auto value = ParseValue();
      if (!value.ok()) return value.status();
      value->line = key_line;
      RUSD_RETURN_IF_ERROR(ExpectLineEnd());
      auto& keys = doc_.tables[table];
      if (keys.count(*key) != 0) {
        return Error("key '" + *key + "' is defined twice (first on line " +
                     std::to_string(keys[*key].line) + ")", key_line);
      }
      keys[*key] = std::move(*value);
    }
    return std::move(doc_);
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }

  Status Error(const std::string& what, int line = 0) const {
    return Status::InvalidArgument(source_ + ":" + std::to_string(line ? line : line_) + ": " + what);
  }

  void SkipSpaces() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t')) ++pos_;
  }

  // Skips spaces, comments and (if `newlines`) line breaks.
  void SkipBlankAndComments(bool newlines) {
    while (!AtEnd()) {
      char c = Peek();
      if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (!AtEnd() && Peek() != '\n') ++pos_;
      } else if (c == '\n' && newlines) {
        ++pos_;
        ++line_;
      } else {
        break;
      }
    }
  }

  // After a header or a key/value pair only a comment and the end of the line may follow.
  Status ExpectLineEnd() {
    SkipBlankAndComments(/*newlines=*/false);
    if (AtEnd()) return Status::Ok();
    if (Peek() != '\n') {
      return Error(std::string("unexpected '") + Peek() + "' after value (one key = value per line)");
    }
    return Status::Ok();
  }

  Result<std::string> ParseKey() {
    if (AtEnd()) return Error("expected a key");
    if (Peek() == '"' || Peek() == '\'') return ParseString();
    size_t start = pos_;
    while (!AtEnd() && IsBareKeyChar(Peek())) ++pos_;
    if (pos_ == start) {
      return Error(std::string("invalid character '") + Peek() + "' where a key was expected");
    }
    return text_.substr(start, pos_ - start);
  }

  Result<std::string> ParseString() {
    char quote = Peek();
    if (pos_ + 2 < text_.size() && text_.compare(pos_, 3, std::string(3, quote)) == 0) {
      return Error("multi-line strings are not supported");
    }
    ++pos_;
    std::string out;
    while (true) {
      if (AtEnd() || Peek() == '\n') return Error("unterminated string");
      char c = text_[pos_++];
      if (c == quote) return out;
      if (c != '\\' || quote == '\'') {
        out.push_back(c);
        continue;
      }
      if (AtEnd()) return Error("unterminated string");
      char e = text_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'u':
        case 'U': {
          size_t n = e == 'u' ? 4 : 8;
          if (pos_ + n > text_.size()) return Error("truncated \\" + std::string(1, e) + " escape");
          uint32_t cp = 0;
          for (size_t i = 0; i < n; ++i) {
            char h = text_[pos_ + i];
            cp <<= 4;
            if (h >= '0' && h <= '9') cp |= static_cast<uint32_t>(h - '0');
            else if (h >= 'a' && h <= 'f') cp |= static_cast<uint32_t>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') cp |= static_cast<uint32_t>(h - 'A' + 10);
            else return Error("invalid hex digit in \\" + std::string(1, e) + " escape");
          }
          // TOML allows only Unicode scalar values; anything else would be invalid UTF-8.
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            std::string escape(1, '\\');
            escape.push_back(e);
            escape.append(text_, pos_, n);
            return Error(escape + " is not a Unicode scalar value");
          }
          pos_ += n;
          AppendUtf8(cp, &out);
          break;
        }
        default:
          return Error(std::string("invalid escape '\\") + e + "' in string");
      }
    }
  }

  Result<TomlValue> ParseValue() {
    TomlValue v;
    if (AtEnd() || Peek() == '\n' || Peek() == '#') return Error("missing value after '='");
    char c = Peek();
    if (c == '"' || c == '\'') {
      auto s = ParseString();
      if (!s.ok()) return s.status();
      v.kind = TomlValue::Kind::kString;
      v.string_value = std::move(*s);
      return v;
    }
    if (c == '[') return ParseArray();
    if (c == '{') return Error("inline tables are not supported");
    // A bare token: boolean or integer.
    size_t start = pos_;
    while (!AtEnd() && Peek() != ' ' && Peek() != '\t' && Peek() != '\r' && Peek() != '\n' &&
           Peek() != '#' && Peek() != ',' && Peek() != ']') {
      ++pos_;
    }
    std::string token = text_.substr(start, pos_ - start);
    if (token == "true" || token == "false") {
      v.kind = TomlValue::Kind::kBoolean;
      v.boolean_value = token == "true";
      return v;
    }
    auto n = ParseInteger(token);
    if (!n.ok()) return n.status();
    v.kind = TomlValue::Kind::kInteger;
    v.integer_value = *n;
    return v;
  }

  Result<int64_t> ParseInteger(const std::string& token) {
    size_t i = 0;
    bool negative = false;
    if (i < token.size() && (token[i] == '+' || token[i] == '-')) negative = token[i++] == '-';
    if (i >= token.size()) return Error("invalid value '" + token + "'");
    if (token.size() - i > 1 && token[i] == '0') {
      return Error("invalid value '" + token + "' (leading zeros and 0x/0o/0b are not supported)");
    }
    uint64_t value = 0;
    bool last_digit = false;
    for (; i < token.size(); ++i) {
      char d = token[i];
      if (d == '_' && last_digit && i + 1 < token.size()) {
        last_digit = false;
        continue;
      }
      if (d < '0' || d > '9') {
        return Error("invalid value '" + token +
                     "' (expected a string in quotes, an integer, true, false or an array)");
      }
      uint64_t next = value * 10 + static_cast<uint64_t>(d - '0');
      if (next / 10 != value || next > static_cast<uint64_t>(INT64_MAX) + (negative ? 1 : 0)) {
        return Error("integer '" + token + "' is out of range");
      }
      value = next;
      last_digit = true;
    }
    if (!last_digit) return Error("invalid integer '" + token + "'");
    return negative ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value);
  }

  Result<TomlValue> ParseArray() {
    int open_line = line_;
    ++pos_;  // '['
    TomlValue v;
    v.kind = TomlValue::Kind::kStringArray;
    while (true) {
      SkipBlankAndComments(/*newlines=*/true);
      if (AtEnd()) return Error("unterminated array (opened on line " + std::to_string(open_line) + ")");
      if (Peek() == ']') {
        ++pos_;
        return v;
      }
      if (Peek() != '"' && Peek() != '\'') {
        return Error("arrays may hold only strings");
      }
      auto s = ParseString();
      if (!s.ok()) return s.status();
      v.array_value.push_back(std::move(*s));
      SkipBlankAndComments(/*newlines=*/true);
      if (AtEnd()) return Error("unterminated array (opened on line " + std::to_string(open_line) + ")");
      if (Peek() == ',') {
        ++pos_;
      } else if (Peek() != ']') {
        return Error("expected ',' or ']' in array");
      }
    }
  }

  const std::string& text_;
  const std::string& source_;
  size_t pos_ = 0;
  int line_ = 1;
  TomlDocument doc_;
};

}  // namespace

Result<TomlDocument> ParseToml(const std::string& text, const std::string& source) {
  return Parser(text, source).Run();
}

Result<TomlDocument> ReadTomlFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("cannot read config file " + path + ": " + std::strerror(errno));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseToml(buf.str(), path);
}

}  // namespace rusd::supervisor
