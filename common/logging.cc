#include "common/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace rusd {

Status SetUpLogging(const std::string& component, const std::string& level,
                    const std::string& format) {
  spdlog::level::level_enum lvl;
  if (level == "debug") lvl = spdlog::level::debug;
  else if (level == "info") lvl = spdlog::level::info;
  else if (level == "warn") lvl = spdlog::level::warn;
  else if (level == "error") lvl = spdlog::level::err;
  else return Status::InvalidArgument("--log-level must be debug, info, warn or error, got '" + level + "'");
  if (format != "text" && format != "json") {
    return Status::InvalidArgument("--log-format must be text or json, got '" + format + "'");
  }
  // Logs go to stderr as etcd's do; the supervisor's children inherit it.
  auto logger = spdlog::stderr_logger_mt(component);
  if (format == "json") {
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","component":"%n","msg":"%v"})",
                        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

}  // namespace rusd
