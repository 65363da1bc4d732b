// `moekit check`: the conformance matrix (check.hpp) on every backend of a device.
#include <unistd.h>

#include <iostream>
#include <memory>

#include "cli.hpp"
#include "commands.hpp"
#include "moekit/check.hpp"
#include "table.hpp"

namespace moekit_cli {
namespace {

struct CheckOptions {
  std::string device;
  std::string backends;
  bool quick = false;
  std::uint64_t seed = 1;
  int threads = 0;
};

int run_check(const CheckOptions& o) {
  require_non_negative("--threads", o.threads);
  const moekit::Registry& registry = moekit::default_registry();
  const moekit::DeviceType device = o.device.empty() ? best_device(registry) : parse_device(o.device);
  const std::vector<const moekit::Backend*> backends = select_backends(registry, device, o.backends);
  const std::vector<moekit::CheckCase> cases = moekit::conformance_cases(o.quick);

  std::vector<std::string> names;
  for (const moekit::Backend* b : backends) names.emplace_back(b->name());
  std::cout << "moekit check: device " << moekit::device_type_name(device) << ", backends " << join(names) << ", "
            << cases.size() << (o.quick ? " quick" : "") << " cases, seed " << o.seed << ", threads "
            << (o.threads ? std::to_string(o.threads) : "all") << "\n\n";

  // Progress only where someone watches: a terminal, rewritten in place.
  const bool progress = isatty(STDERR_FILENO);
  const moekit::RunContext context{o.threads, nullptr};
  Table table({{"case", Table::Align::left},
               {"backend", Table::Align::left},
               {"rel error"},
               {"tolerance"},
               {"result", Table::Align::left}});
  int passed = 0, failed = 0, skipped = 0;
  const std::size_t total = cases.size() * backends.size();
  std::size_t done = 0;
  for (const moekit::CheckCase& c : cases) {
    for (const moekit::Backend* b : backends) {
      if (progress) std::cerr << "\r[" << ++done << "/" << total << "] " << c.name << " " << b->name() << "\x1b[K";
      const moekit::CheckResult r = moekit::check_backend(*b, c, o.seed, context);
      std::string result;
      if (r.skipped) {
        ++skipped;
        result = "SKIP: " + r.detail;
      } else if (r.passed) {
        ++passed;
        result = "PASS";
      } else {
        ++failed;
        result = "FAIL" + (r.detail.empty() ? "" : ": " + r.detail);
      }
      table.add_row({c.name, std::string(b->name()), r.skipped ? "-" : significant(r.rel_error, 3),
                     significant(r.tolerance, 3), result});
    }
  }
  if (progress) std::cerr << "\r\x1b[K" << std::flush;
  table.print(std::cout);
  std::cout << "\ncheck: " << passed << " passed, " << failed << " failed, " << skipped << " skipped\n";
  return failed ? kExitMismatch : 0;
}

}  // namespace

Command add_check_command(CLI::App& parent) {
  auto o = std::make_shared<CheckOptions>();
  CLI::App* sub = parent.add_subcommand("check", "run the conformance matrix on every backend of a device");
  sub->add_option("--device", o->device, "cpu or cuda (default: cuda when available, else cpu)");
  sub->add_option("--backends", o->backends, "comma-separated backends (default: all available on the device)");
  sub->add_flag("--quick", o->quick, "one edge-shape sweep per dtype");
  sub->add_option("--seed", o->seed, "seed of the random inputs")->check(unsigned_integer())->capture_default_str();
  sub->add_option("--threads", o->threads, "CPU threads per call (0 = all)")->capture_default_str();
  return {sub, [o] { return run_check(*o); }};
}

}  // namespace moekit_cli
