// moekit CLI: grouped bar charts as standalone SVG files, written by hand (docs/benchmarks/README.md
// says why: a report needs a handful of bar charts, and a writer of ~250 lines is less to carry than
// gnuplot or matplotlib on every machine that runs the bench).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace moekit_cli {

struct BarSeries {
  std::string name;             // legend entry
  std::vector<double> values;   // one per group; NaN: no bar
  std::vector<std::string> notes;  // one per group (or empty): shown where a bar is missing ("OOM")
};

struct BarChart {
  std::string title;     // top line, also the SVG <title>
  std::string subtitle;  // a second, smaller line (what was measured, where)
  std::string x_label, y_label;  // y_label carries the unit: "latency (ms, log scale)"
  std::vector<std::string> groups;  // the x categories
  std::vector<BarSeries> series;
  bool log_y = false;
  std::optional<double> reference;  // a dashed horizontal line (1.0 on a speed-up chart)
};

// A complete SVG 1.1 document (UTF-8, well-formed XML): <title>, the plot area, a y axis with
// ticks and gridlines (id "y-axis"), the x axis with the group labels (id "x-axis"), axis labels
// (class "axis-label") and a legend (id "legend").
std::string render_svg(const BarChart& chart);

// Text escaped for XML character data and attribute values.
std::string xml_escape(const std::string& text);

}  // namespace moekit_cli
