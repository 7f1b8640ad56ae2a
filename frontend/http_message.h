// HTTP/1.1 request parsing and response formatting for the small HTTP surface served on the
// client port (/version, /health, /livez, /readyz). Deliberately minimal and strict: a
// request line, headers, an optional Content-Length body. Anything else
// (chunked bodies, oversized headers, garbage) is reported as an error so the connection
// can answer 400 and close. Pure functions; no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rusd::frontend {

struct HttpRequest {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', undecoded
  std::string body;   // the Content-Length bytes (the JSON gateway reads them)
  bool keep_alive = true;
};

enum class HttpParse { kIncomplete, kComplete, kBad };

// Largest request head (request line + headers) and body accepted (a gateway put carries up
// to --max-request-bytes, base64-encoded).
inline constexpr size_t kMaxHttpHeadBytes = 16 * 1024;
inline constexpr size_t kMaxHttpBodyBytes = 4 * 1024 * 1024;

// Parses one request from the start of `in`. kComplete: *out is filled and *consumed is the
// request's length including its body. kIncomplete: more bytes are needed (and `in` is still
// within the limits). kBad: not a request we serve; answer 400 and close.
HttpParse ParseHttpRequest(std::string_view in, HttpRequest* out, size_t* consumed);

// The values of query parameter `name` (each also split at commas, as etcd's getQuerySet),
// percent-decoded.
std::vector<std::string> QueryValues(std::string_view query, std::string_view name);
// True if the query has parameter `name` at all (even "?verbose").
bool QueryHas(std::string_view query, std::string_view name);

struct HttpResponse {
  int status = 200;
  std::string content_type;  // omitted when empty
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Serializes a response with Content-Length and a Connection header.
std::string FormatHttpResponse(const HttpResponse& response, bool keep_alive);

}  // namespace rusd::frontend
