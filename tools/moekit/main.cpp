// moekit: list, check and benchmark the experts backends.
//
// Every failure the user can act on ends as one line on stderr starting with "moekit: ":
// exit 2 for a bad request or a setup error, exit 1 for a check mismatch or a failed run.
#include <algorithm>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"
#include "moekit/error.hpp"

namespace {

int fail(std::string message, int code) {
  // Library and CLI11 messages can span lines; the contract is one line.
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  while (!message.empty() && message.back() == ' ') message.pop_back();
  std::cerr << "moekit: " << message << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace moekit_cli;
  set_command_line(argc, argv);
  CLI::App app{"moekit: the expert feed-forward part of mixture-of-experts layers, with selectable backends",
               "moekit"};
  app.require_subcommand(1);
  std::vector<Command> commands{add_list_command(app), add_check_command(app), add_bench_command(app), add_run_command(app),
                                add_report_command(app), add_tune_command(app)};
  try {
    // CLI11 would call a misspelt subcommand a missing one; name it and the valid ones instead.
    if (argc > 1 && argv[1][0] != '-') {
      std::vector<std::string> names;
      for (const Command& c : commands) names.push_back(c.app->get_name());
      if (std::find(names.begin(), names.end(), argv[1]) == names.end())
        return fail("unknown subcommand '" + std::string(argv[1]) + "'; valid: " + join(names), kExitUsage);
    }
    app.parse(argc, argv);
    for (const Command& c : commands)
      if (c.app->parsed()) return c.run();
    return fail("no subcommand", kExitUsage);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    return fail(e.what(), kExitUsage);
  } catch (const UsageError& e) {
    return fail(e.what(), kExitUsage);
  } catch (const moekit::Error& e) {
    return fail(e.what(), kExitUsage);
  } catch (const std::bad_alloc&) {
    return fail("out of memory", kExitUsage);
  } catch (const std::exception& e) {
    return fail(e.what(), kExitUsage);
  }
}
