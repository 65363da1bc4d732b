#include "io/strict_json.hpp"

#include <set>
#include <vector>

#include "moekit/error.hpp"

namespace moekit::io {

std::string quoted(std::string_view name) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s = "'";
  // Long names are cut: an error message is not the place for a megabyte of key.
  const std::size_t shown = name.size() > 200 ? 200 : name.size();
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) {
      s += "\\x";
      s += hex[c >> 4];
      s += hex[c & 15];
    } else {
      s += char(c);
    }
  }
  if (shown < name.size()) s += "...";
  return s + "'";
}

nlohmann::ordered_json parse_strict_json(std::string_view text, const std::string& label, int max_depth) {
  using Json = nlohmann::ordered_json;
  // One set of seen keys per open object; arrays push nothing but count towards the depth.
  std::vector<std::set<std::string>> open_objects;
  int depth = 0;
  auto callback = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (++depth > max_depth)
          throw Error(Errc::invalid_argument, label + ": JSON nested deeper than " + std::to_string(max_depth));
        if (event == Json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        open_objects.pop_back();
        --depth;
        break;
      case Json::parse_event_t::array_end:
        --depth;
        break;
      case Json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second)
          throw Error(Errc::invalid_argument, label + ": duplicate JSON key " + io::quoted(key));
        break;
      }
      case Json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    throw Error(Errc::invalid_argument, label + ": not valid JSON (" + e.what() + ")");
  }
}

}  // namespace moekit::io
