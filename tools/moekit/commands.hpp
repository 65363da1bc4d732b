// moekit CLI: the subcommands. Each adds itself to the app and returns what to run once parsing
// succeeded; run() returns the exit code and may throw UsageError or moekit::Error (exit 2).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace moekit_cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_list_command(CLI::App& parent);
Command add_check_command(CLI::App& parent);
Command add_bench_command(CLI::App& parent);
Command add_run_command(CLI::App& parent);
Command add_report_command(CLI::App& parent);
Command add_tune_command(CLI::App& parent);

}  // namespace moekit_cli
