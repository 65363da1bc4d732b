// `moekit list`: every backend of this build on every device, and whether it can run here.
#include <iostream>

#include "bench.hpp"
#include "commands.hpp"
#include "moekit/backend.hpp"
#include "table.hpp"

namespace moekit_cli {

Command add_list_command(CLI::App& parent) {
  CLI::App* sub = parent.add_subcommand("list", "list the backends of this build and whether each can run here");
  return {sub, [] {
            const DeviceDescription cpu = describe_device(moekit::DeviceType::cpu, 0);
            std::cout << "moekit list: the backends of this build\ncpu: " << cpu.text << "\n\n";
            Table table({{"backend", Table::Align::left}, {"device", Table::Align::left}, {"status", Table::Align::left}});
            for (const moekit::Backend* b : moekit::default_registry().list()) {
              const moekit::Support s = b->available();
              table.add_row({std::string(b->name()), std::string(moekit::device_type_name(b->device())),
                             s.ok ? "available" : "unavailable: " + s.reason});
            }
            table.print(std::cout);
            return 0;
          }};
}

}  // namespace moekit_cli
