// moekit internal: JSON parsing that refuses what nlohmann would accept silently.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace moekit::io {

// Parses `text` as one JSON value, keeping object keys in file order. Throws
// Error(invalid_argument) naming `label` for malformed JSON, a key repeated within one object
// (nlohmann would keep the last one), or nesting deeper than `max_depth`.
nlohmann::ordered_json parse_strict_json(std::string_view text, const std::string& label, int max_depth);

// "'name'" with control characters escaped, so hostile names cannot forge lines of an error.
std::string quoted(std::string_view name);

}  // namespace moekit::io
