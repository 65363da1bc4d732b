// moekit CLI: the pieces every subcommand shares: usage errors, list parsing, device and backend
// selection.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "moekit/backend.hpp"

namespace moekit_cli {

// A mistake in what the user asked for; main prints "moekit: <what>" and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void usage(const std::string& message);

inline constexpr int kExitMismatch = 1;  // a check failed, a backend failed in a run
inline constexpr int kExitUsage = 2;     // bad request, setup error, not enough memory

// The command line as typed (argv joined, arguments with spaces or quotes shell-quoted), for reports.
void set_command_line(int argc, char** argv);
const std::string& command_line();

std::string join(const std::vector<std::string>& items, std::string_view sep = ", ");

// "1,16, 128" -> {"1", "16", "128"}. An empty list or item is a usage error naming `option`.
std::vector<std::string> split_list(std::string_view option, std::string_view text);
// Each item a positive integer.
std::vector<std::int64_t> parse_positive_list(std::string_view option, std::string_view text);
void require_positive(std::string_view option, std::int64_t value);
void require_non_negative(std::string_view option, std::int64_t value);

// For unsigned options, which CLI11 would otherwise read "-3" into as a wrapped-around value.
CLI::Validator unsigned_integer();

moekit::DeviceType parse_device(std::string_view name);
// "cuda" when some CUDA backend is available, else "cpu".
moekit::DeviceType best_device(const moekit::Registry& registry);

// The requested backends (comma list), or, when `list` is empty, every available backend of the
// device. Usage errors for an unknown or unavailable name (listing the valid ones) and for a
// device with nothing to run ("no CUDA device backends in this build").
std::vector<const moekit::Backend*> select_backends(const moekit::Registry& registry,
                                                     moekit::DeviceType device,
                                                     const std::string& list);

}  // namespace moekit_cli
