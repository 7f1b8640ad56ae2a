// The one logging setup of every rusd process (spdlog). Call once at the start of main().
// Text lines look like "2026-11-24T12:00:00.123Z info raftd: message"; JSON lines carry
// {"ts","level","component","msg"} like etcd's zap logger, so log shippers parse both.
#pragma once

#include <string>

#include "common/status.h"

namespace rusd {

// level: debug|info|warn|error; format: text|json. Invalid values return InvalidArgument.
Status SetUpLogging(const std::string& component, const std::string& level,
                    const std::string& format);

}  // namespace rusd
