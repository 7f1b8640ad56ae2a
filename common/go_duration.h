// Go's time.ParseDuration, for the duration flags etcd takes as Go durations
// ("10m", "1h30m", "1.5s", "-2us", "0"): the supervisor validates them and the component
// that uses one converts it, with the same rules and the same error text.
//
// Grammar: [-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+ or [-+]?0. A value outside
// int64 nanoseconds (about ±292 years) is an error, as in Go, never a wrapped number.
// Pure function; any thread.
#pragma once

#include <chrono>
#include <string_view>

#include "common/status.h"

namespace rusd {

// InvalidArgument("time: invalid duration \"<text>\"") for anything Go refuses.
Result<std::chrono::nanoseconds> ParseGoDuration(std::string_view text);

}  // namespace rusd
