// moekit CLI: what Linux says about memory (/proc), with graceful absence elsewhere.
#pragma once

#include <cstdint>
#include <optional>

namespace moekit_cli {

// MemAvailable from /proc/meminfo: what can be allocated without swapping.
std::optional<std::uint64_t> mem_available_bytes();

struct ResidentSet {
  std::uint64_t current = 0;  // VmRSS
  std::uint64_t peak = 0;     // VmHWM
};
std::optional<ResidentSet> resident_set();

// Resets VmHWM to the current RSS (echo 5 > /proc/self/clear_refs, Linux >= 4.0).
// False when the kernel or a sandbox refuses, in which case the peak spans the whole process.
bool reset_peak_rss();

}  // namespace moekit_cli
