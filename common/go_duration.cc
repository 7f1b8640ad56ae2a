#include "common/go_duration.h"

#include <cstdint>
#include <string>

namespace rusd {
namespace {

constexpr uint64_t kLimit = uint64_t{1} << 63;  // |INT64_MIN|: Go's bound, sign applied last

uint64_t UnitNanoseconds(std::string_view unit) {
  if (unit == "ns") return 1;
  if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") return 1000;
  if (unit == "ms") return 1000 * 1000;
  if (unit == "s") return 1000 * 1000 * 1000;
  if (unit == "m") return uint64_t{60} * 1000 * 1000 * 1000;
  if (unit == "h") return uint64_t{3600} * 1000 * 1000 * 1000;
  return 0;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

Result<std::chrono::nanoseconds> ParseGoDuration(std::string_view text) {
  const std::string original(text);
  auto bad = [&original] {
    return Status::InvalidArgument("time: invalid duration \"" + original + "\"");
  };
  bool negative = false;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (text == "0") return std::chrono::nanoseconds(0);
  if (text.empty()) return bad();
  uint64_t total = 0;
  while (!text.empty()) {
    size_t i = 0;
    bool digits = false;
    uint64_t whole = 0;  // integer part, checked against kLimit digit by digit
    while (i < text.size() && IsDigit(text[i])) {
      if (whole > kLimit / 10) return bad();
      whole = whole * 10 + static_cast<uint64_t>(text[i] - '0');
      if (whole > kLimit) return bad();
      digits = true;
      ++i;
    }
    uint64_t fraction = 0;  // fraction digits, as Go keeps them: fraction / scale
    double scale = 1;
    if (i < text.size() && text[i] == '.') {
      ++i;
      bool overflow = false;
      while (i < text.size() && IsDigit(text[i])) {
        digits = true;
        if (!overflow) {
          const uint64_t next = fraction * 10 + static_cast<uint64_t>(text[i] - '0');
          if (fraction > kLimit / 10 || next > kLimit) {
            overflow = true;  // further digits are below any unit's resolution
          } else {
            fraction = next;
            scale *= 10;
          }
        }
        ++i;
      }
    }
    if (!digits) return bad();
    size_t u = i;
    while (u < text.size() && !IsDigit(text[u]) && text[u] != '.') ++u;
    const uint64_t unit = UnitNanoseconds(text.substr(i, u - i));
    if (unit == 0) return bad();
    if (whole > kLimit / unit) return bad();
    uint64_t value = whole * unit;
    if (fraction > 0) {
      // At most unit (< 2^42) nanoseconds: the double and the sum below cannot overflow.
      value += static_cast<uint64_t>(static_cast<double>(fraction) *
                                     (static_cast<double>(unit) / scale));
      if (value > kLimit) return bad();
    }
    total += value;
    if (total > kLimit) return bad();
    text.remove_prefix(u);
  }
  if (!negative && total == kLimit) return bad();
  // C++20 conversions to signed are modular: 0 - 2^63 becomes INT64_MIN.
  const auto ns = static_cast<int64_t>(negative ? 0 - total : total);
  return std::chrono::nanoseconds(ns);
}

}  // namespace rusd
