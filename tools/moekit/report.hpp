// moekit CLI: benchmark reports. One JSON schema ("moekit-report/1") for `moekit bench --report`
// and for bench/hf_compare.py, so that `moekit report --merge` can put both into one folder:
//
//   { "schema": "moekit-report/1",
//     "title": "...",
//     "sources": [ { "tool", "command", "device", "layer", "notes": [...] } ],
//     "rows": [ { "source": 0, "impl": "moekit" | "transformers", "backend", "mode", "scope":
//                 "experts" | "block", "batch", "seq", "tokens", "layers", "status": "ok" | "oom" |
//                 "timeout" | "n/a" | "skipped" | "failed", "median_ms", "p90_ms", "floor_ms",
//                 "extra_memory_bytes", "peak_memory_bytes", "check", "detail" } ] }
//
// mode: moekit "graph" / "stream" (cuda) or "cpu"; transformers "no compile" or "compile <mode>".
// batch 0: the token count was given alone. extra_memory_bytes: what the call needed beyond the
// weights and inputs (moekit cuda: workspace + device growth; cpu: resident growth; transformers:
// torch.cuda.max_memory_allocated delta). Optional fields may be absent or null.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moekit_cli {

inline constexpr const char* kReportSchema = "moekit-report/1";

// Reads and checks a results.json; throws UsageError naming the file and what is wrong.
nlohmann::json read_report(const std::string& path);
// One document: the sources in order, each row's "source" renumbered.
nlohmann::json merge_reports(const std::vector<nlohmann::json>& documents, const std::string& title);

// Writes results.json, results.csv, results.md and the SVG charts (latency_*.svg, speedup_*.svg,
// memory_*.svg, one per scope present) into `dir` (created), plus a PNG of each chart when
// rsvg-convert is on PATH. Returns the file names written.
std::vector<std::string> write_report(const nlohmann::json& document, const std::string& dir);

}  // namespace moekit_cli
