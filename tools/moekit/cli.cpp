#include "cli.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace moekit_cli {
namespace {

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = char(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

}  // namespace

void usage(const std::string& message) { throw UsageError(message); }

namespace {
std::string& stored_command_line() {
  static std::string line;
  return line;
}
}  // namespace

void set_command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i == 0) {
      const auto slash = a.find_last_of('/');
      if (slash != std::string::npos) a = a.substr(slash + 1);
    }
    if (a.empty() || a.find_first_of(" \t'\"$`\\") != std::string::npos) {
      std::string q = "'";
      for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      a = q + "'";
    }
    line += (i ? " " : "") + a;
  }
  stored_command_line() = line;
}

const std::string& command_line() { return stored_command_line(); }

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string s;
  for (const auto& item : items) {
    if (!s.empty()) s += sep;
    s += item;
  }
  return s;
}

std::vector<std::string> split_list(std::string_view option, std::string_view text) {
  std::vector<std::string> items;
  if (trim(text).empty()) usage(std::string(option) + " needs a non-empty comma-separated list");
  std::size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    const std::string_view item = trim(text.substr(start, comma - start));
    if (item.empty()) usage(std::string(option) + ": empty item in '" + std::string(text) + "'");
    items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return items;
}

std::vector<std::int64_t> parse_positive_list(std::string_view option, std::string_view text) {
  std::vector<std::int64_t> values;
  for (const std::string& item : split_list(option, text)) {
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (end == item.c_str() || *end != '\0') usage(std::string(option) + ": '" + item + "' is not an integer");
    if (errno == ERANGE) usage(std::string(option) + ": '" + item + "' is out of range");
    require_positive(option, v);
    values.push_back(v);
  }
  return values;
}

void require_positive(std::string_view option, std::int64_t value) {
  if (value <= 0) usage(std::string(option) + " must be positive, got " + std::to_string(value));
}

void require_non_negative(std::string_view option, std::int64_t value) {
  if (value < 0) usage(std::string(option) + " must be >= 0, got " + std::to_string(value));
}

moekit::DeviceType parse_device(std::string_view name) {
  if (name == "cpu") return moekit::DeviceType::cpu;
  if (name == "cuda") return moekit::DeviceType::cuda;
  usage("unknown device '" + std::string(name) + "'; valid: cpu, cuda");
}

moekit::DeviceType best_device(const moekit::Registry& registry) {
  for (const moekit::Backend* b : registry.list())
    if (b->device() == moekit::DeviceType::cuda && b->available().ok) return moekit::DeviceType::cuda;
  return moekit::DeviceType::cpu;
}

std::vector<const moekit::Backend*> select_backends(const moekit::Registry& registry,
                                                     moekit::DeviceType device,
                                                     const std::string& list) {
  const std::string dev(moekit::device_type_name(device));
  const std::vector<std::string> valid = registry.names(device);
  if (valid.empty()) usage("no " + upper(dev) + " device backends in this build");

  std::vector<const moekit::Backend*> chosen;
  if (list.empty()) {
    // Usually one cause (no device, old driver) shared by all: say it once.
    std::vector<std::string> reasons;
    for (const std::string& name : valid) {
      const moekit::Backend& b = registry.get(name, device);
      if (const moekit::Support s = b.available(); s.ok)
        chosen.push_back(&b);
      else if (std::find(reasons.begin(), reasons.end(), s.reason) == reasons.end())
        reasons.push_back(s.reason);
    }
    if (chosen.empty())
      usage("no " + upper(dev) + " backend can run here (" + join(valid) + "): " + join(reasons, "; "));
    return chosen;
  }
  for (const std::string& name : split_list("--backends", list)) {
    const moekit::Backend* b = registry.find(name, device);
    if (!b) usage("unknown backend '" + name + "' for " + dev + "; valid: " + join(valid));
    if (const moekit::Support s = b->available(); !s.ok)
      usage("backend '" + name + "' (" + dev + ") is not available: " + s.reason);
    if (std::find(chosen.begin(), chosen.end(), b) == chosen.end()) chosen.push_back(b);
  }
  return chosen;
}

CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)
          return "'" + value + "' is not a non-negative integer";
        errno = 0;
        std::strtoull(value.c_str(), nullptr, 10);
        if (errno == ERANGE) return "'" + value + "' is out of range";
        return {};
      },
      "UINT");
}

}  // namespace moekit_cli
