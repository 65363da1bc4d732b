#include "sysinfo.hpp"

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace moekit_cli {
namespace {

// The value of a "Key:   123 kB" line, in bytes.
std::optional<std::uint64_t> kb_field(const char* path, std::string_view key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() <= key.size() || line.compare(0, key.size(), key) != 0 || line[key.size()] != ':')
      continue;
    std::istringstream fields(line.substr(key.size() + 1));
    std::uint64_t kb = 0;
    if (fields >> kb) return kb * 1024;
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> mem_available_bytes() { return kb_field("/proc/meminfo", "MemAvailable"); }

std::optional<ResidentSet> resident_set() {
  auto rss = kb_field("/proc/self/status", "VmRSS");
  auto hwm = kb_field("/proc/self/status", "VmHWM");
  if (!rss || !hwm) return std::nullopt;
  return ResidentSet{*rss, *hwm};
}

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5" << std::flush;
  return bool(out);
}

}  // namespace moekit_cli
