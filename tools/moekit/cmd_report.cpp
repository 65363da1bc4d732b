// `moekit report`: the report folder (results.json, .csv, .md and the SVG charts) of one or more
// results.json files, e.g. moekit's and bench/hf_compare.py's merged into one.
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "commands.hpp"
#include "report.hpp"

namespace moekit_cli {
namespace {

struct ReportOptions {
  std::vector<std::string> inputs;
  std::string out, title;
};

int run_report_command(const ReportOptions& o) {
  if (o.inputs.empty()) usage("report needs --merge FILE... (one or more results.json)");
  std::vector<nlohmann::json> docs;
  for (const std::string& path : o.inputs) docs.push_back(read_report(path));
  std::string title = o.title;
  if (title.empty()) title = docs.size() == 1 ? docs[0].value("title", std::string("moekit benchmark")) : "moekit and transformers";
  const auto files = write_report(merge_reports(docs, title), o.out);
  std::cout << "moekit report: " << files.size() << " files in " << o.out << ": " << join(files) << "\n";
  return 0;
}

}  // namespace

Command add_report_command(CLI::App& parent) {
  auto o = std::make_shared<ReportOptions>();
  CLI::App* sub = parent.add_subcommand("report", "write the report folder of one or more results.json (merged)");
  sub->add_option("--merge", o->inputs, "results.json files (moekit bench --report, bench/hf_compare.py)")
      ->expected(1, -1);
  sub->add_option("--out", o->out, "folder to write results.json, results.csv, results.md and the SVG charts into")
      ->required();
  sub->add_option("--title", o->title, "title of the merged report");
  return {sub, [o] { return run_report_command(*o); }};
}

}  // namespace moekit_cli
