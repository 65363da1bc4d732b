// moekit internal: the weight map of model.safetensors.index.json.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace moekit::safetensors::detail {

inline constexpr const char* kIndexName = "model.safetensors.index.json";
inline constexpr const char* kSingleName = "model.safetensors";

// Tensor name -> shard file name. Throws Error(invalid_argument) naming `label` when the text is
// not {"weight_map": {string: string}, ...}, repeats a key, or names a shard that is not a plain
// file name in the same folder (no '/', no "..": an index must not reach outside its folder).
std::map<std::string, std::string, std::less<>> parse_weight_map(std::string_view json_text, const std::string& label);

}  // namespace moekit::safetensors::detail
