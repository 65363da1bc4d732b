#include "io/safetensors_index.hpp"

#include "io/strict_json.hpp"
#include "moekit/error.hpp"

namespace moekit::safetensors::detail {

namespace {
// {"metadata": {...}, "weight_map": {...}}: nothing in an index goes deeper than a few levels.
constexpr int kMaxJsonDepth = 4;

bool plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos && s.find('\0') == std::string::npos;
}
}  // namespace

std::map<std::string, std::string, std::less<>> parse_weight_map(std::string_view json_text, const std::string& label) {
  const auto root = io::parse_strict_json(json_text, label, kMaxJsonDepth);
  if (!root.is_object()) throw Error(Errc::invalid_argument, label + ": not a JSON object");
  const auto map = root.find("weight_map");
  if (map == root.end()) throw Error(Errc::invalid_argument, label + ": no \"weight_map\"");
  if (!map->is_object()) throw Error(Errc::invalid_argument, label + ": \"weight_map\" is not a JSON object");
  std::map<std::string, std::string, std::less<>> out;
  for (const auto& [name, file] : map->items()) {
    if (!file.is_string())
      throw Error(Errc::invalid_argument, label + ": shard of tensor " + io::quoted(name) + " is not a string");
    const auto& shard = file.get_ref<const std::string&>();
    if (!plain_file_name(shard))
      throw Error(Errc::invalid_argument,
                  label + ": tensor " + io::quoted(name) + " names shard " + io::quoted(shard) + ", not a file name in the folder");
    out.emplace(name, shard);
  }
  return out;
}

}  // namespace moekit::safetensors::detail
