// Escaping of text placed inside a JSON string literal, as Go's encoding/json writes it
// (etcd's HTTP answers come from Go, so rusd's byte-match them: <, > and & as \u003c ...).
// Pure; callable from any thread.
#pragma once

#include <string>
#include <string_view>

namespace rusd::frontend {

// `s` escaped for use between the quotes of a JSON string (no quotes added).
std::string JsonEscape(std::string_view s);

}  // namespace rusd::frontend
