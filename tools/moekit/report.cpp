#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <tuple>

#include "cli.hpp"
#include "svg_chart.hpp"
#include "table.hpp"

namespace moekit_cli {
namespace {

using nlohmann::json;

std::optional<double> num_of(const json& row, const char* key) {
  const auto it = row.find(key);
  if (it == row.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::string str_of(const json& row, const char* key) {
  const auto it = row.find(key);
  if (it == row.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

std::int64_t int_of(const json& row, const char* key) {
  const auto v = num_of(row, key);
  return v ? std::int64_t(*v) : 0;
}

struct Point {
  std::int64_t batch = 0, seq = 0, tokens = 0;
  auto key() const { return std::tuple(batch, seq, tokens); }
  bool operator==(const Point& o) const { return key() == o.key(); }
  bool operator<(const Point& o) const { return key() < o.key(); }
  std::string label() const {
    const std::string t = "T=" + std::to_string(tokens);
    return batch ? std::to_string(batch) + "x" + std::to_string(seq) + " (" + t + ")" : t;
  }
};

Point point_of(const json& row) { return {int_of(row, "batch"), int_of(row, "seq"), int_of(row, "tokens")}; }

std::string series_of(const json& row) {
  std::string s = str_of(row, "impl") + " " + str_of(row, "backend");
  const std::string mode = str_of(row, "mode");
  return mode.empty() ? s : s + " (" + mode + ")";
}

bool ok(const json& row) { return str_of(row, "status") == "ok" && num_of(row, "median_ms").has_value(); }

std::string status_text(const json& row) {
  const std::string s = str_of(row, "status");
  return s == "oom" ? "OOM" : s;
}

// The rows of one scope, indexed by (series, point).
struct ScopeTable {
  std::string scope;
  std::vector<Point> points;
  std::vector<std::string> series;
  std::map<std::pair<std::string, Point>, const json*> cell;
  std::map<Point, double> floor_ms;
  std::string baseline;  // the series speed-ups are taken against; empty: none
};

ScopeTable scope_table(const json& doc, const std::string& scope) {
  ScopeTable t;
  t.scope = scope;
  for (const json& row : doc["rows"]) {
    if (str_of(row, "scope") != scope) continue;
    const Point p = point_of(row);
    const std::string s = series_of(row);
    if (std::find(t.points.begin(), t.points.end(), p) == t.points.end()) t.points.push_back(p);
    if (std::find(t.series.begin(), t.series.end(), s) == t.series.end()) t.series.push_back(s);
    t.cell.emplace(std::pair(s, p), &row);
    if (const auto f = num_of(row, "floor_ms"); f && *f > 0 && !t.floor_ms.count(p)) t.floor_ms[p] = *f;
  }
  std::sort(t.points.begin(), t.points.end());
  // Speed-ups against transformers' eager without compile, else moekit's eager without a graph.
  for (const char* want : {"transformers eager (no compile)", "moekit eager (stream)", "moekit eager (cpu)"})
    if (std::find(t.series.begin(), t.series.end(), want) != t.series.end()) {
      t.baseline = want;
      break;
    }
  return t;
}

const json* find_cell(const ScopeTable& t, const std::string& series, const Point& p) {
  const auto it = t.cell.find(std::pair(series, p));
  return it == t.cell.end() ? nullptr : it->second;
}

std::optional<double> speedup(const ScopeTable& t, const std::string& series, const Point& p) {
  const json* base = find_cell(t, t.baseline, p);
  const json* row = find_cell(t, series, p);
  if (!base || !row || !ok(*base) || !ok(*row)) return std::nullopt;
  return *num_of(*base, "median_ms") / *num_of(*row, "median_ms");
}

std::string scope_title(const std::string& scope) {
  return scope == "block" ? "MoE block (router + experts + shared)" : "experts call";
}

std::string subtitle(const json& doc) {
  std::vector<std::string> parts;
  for (const json& s : doc["sources"]) {
    std::string p = str_of(s, "tool");
    if (const std::string d = str_of(s, "device"); !d.empty()) p += " on " + d;
    if (const std::string l = str_of(s, "layer"); !l.empty()) p += ", " + l;
    parts.push_back(p);
  }
  return join(parts, "; ");
}

std::string layers_note(const json& doc) {
  std::int64_t layers = 1;
  for (const json& row : doc["rows"]) layers = std::max(layers, int_of(row, "layers"));
  return layers > 1 ? ", " + std::to_string(layers) + " layers in a row" : "";
}

enum class Chart { latency, speedup, memory };

BarChart make_chart(const json& doc, const ScopeTable& t, Chart kind) {
  BarChart c;
  c.subtitle = subtitle(doc);
  c.x_label = "batch x sequence length (T tokens)";
  for (const Point& p : t.points) c.groups.push_back(p.label());
  const std::string what = scope_title(t.scope);
  const std::string stack = layers_note(doc).empty() ? "" : " (" + layers_note(doc).substr(2) + ")";
  switch (kind) {
    case Chart::latency:
      c.title = "Median latency of the " + what + stack;
      c.y_label = "latency (ms, log scale)";
      c.log_y = true;
      break;
    case Chart::speedup:
      c.title = "Speed-up of the " + what + " over " + t.baseline + stack;
      c.y_label = "speed-up (x, log scale; dashed: 1x)";
      c.log_y = true;
      c.reference = 1.0;
      break;
    case Chart::memory:
      c.title = "Peak extra memory of the " + what + stack;
      c.y_label = "memory beyond weights and inputs (MiB, log scale)";
      c.log_y = true;
      break;
  }
  for (const std::string& s : t.series) {
    BarSeries series;
    series.name = s;
    for (const Point& p : t.points) {
      const json* row = find_cell(t, s, p);
      double v = NAN;
      std::string note;
      if (!row) {
        note = "";
      } else if (!ok(*row)) {
        note = status_text(*row);
      } else if (kind == Chart::latency) {
        v = *num_of(*row, "median_ms");
      } else if (kind == Chart::speedup) {
        if (const auto x = speedup(t, s, p)) v = *x;
      } else if (const auto m = num_of(*row, "extra_memory_bytes")) {
        v = *m / 1048576.0;
        if (v <= 0) {
          v = NAN;
          note = "0";
        }
      } else {
        note = "not measured";
      }
      series.values.push_back(v);
      series.notes.push_back(note);
    }
    c.series.push_back(std::move(series));
  }
  return c;
}

std::string cell_text(const json* row, Chart kind, const ScopeTable& t, const std::string& series, const Point& p) {
  if (!row) return "";
  if (!ok(*row)) return status_text(*row);
  switch (kind) {
    case Chart::latency: return significant(*num_of(*row, "median_ms"), 4);
    case Chart::speedup: {
      const auto x = speedup(t, series, p);
      return x ? fixed(*x, 2) + "x" : "-";
    }
    case Chart::memory: {
      const auto m = num_of(*row, "extra_memory_bytes");
      return m ? significant(*m / 1048576.0, 4) : "-";
    }
  }
  return "";
}

std::string md_escape(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

void markdown_table(std::ostream& o, const ScopeTable& t, Chart kind) {
  o << "| series |";
  for (const Point& p : t.points) o << " " << p.label() << " |";
  o << "\n|---|";
  for (std::size_t i = 0; i < t.points.size(); ++i) o << "---|";
  o << "\n";
  if (kind == Chart::latency && !t.floor_ms.empty()) {
    o << "| floor (moekit ceilings) |";
    for (const Point& p : t.points) o << " " << (t.floor_ms.count(p) ? significant(t.floor_ms.at(p), 4) : "") << " |";
    o << "\n";
  }
  for (const std::string& s : t.series) {
    o << "| " << md_escape(s) << " |";
    for (const Point& p : t.points) o << " " << md_escape(cell_text(find_cell(t, s, p), kind, t, s, p)) << " |";
    o << "\n";
  }
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string json_cell(const json& row, const char* key) {
  const auto it = row.find(key);
  if (it == row.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer() || it->is_number_unsigned()) return it->dump();
  if (it->is_number()) return significant(it->get<double>(), 8);
  return it->dump();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) usage("--report: cannot write '" + path.string() + "'");
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

json read_report(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage("cannot read the report '" + path + "'");
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::exception& e) {
    usage("'" + path + "' is not JSON: " + e.what());
  }
  if (!doc.is_object() || str_of(doc, "schema") != kReportSchema)
    usage("'" + path + "' is not a " + std::string(kReportSchema) + " document (no \"schema\": \"" + kReportSchema +
          "\"; write it with moekit bench --report or bench/hf_compare.py)");
  if (!doc.contains("rows") || !doc["rows"].is_array() || !doc.contains("sources") || !doc["sources"].is_array())
    usage("'" + path + "' lacks the \"sources\" or \"rows\" arrays");
  for (const json& row : doc["rows"])
    if (!row.is_object() || str_of(row, "backend").empty() || str_of(row, "scope").empty() ||
        !num_of(row, "tokens"))
      usage("'" + path + "': every row needs \"backend\", \"scope\" and \"tokens\"");
  return doc;
}

json merge_reports(const std::vector<json>& documents, const std::string& title) {
  json merged = {{"schema", kReportSchema}, {"title", title}, {"sources", json::array()}, {"rows", json::array()}};
  for (const json& d : documents) {
    const std::int64_t base = std::int64_t(merged["sources"].size());
    for (const json& s : d["sources"]) merged["sources"].push_back(s);
    for (json row : d["rows"]) {
      row["source"] = base + int_of(row, "source");
      merged["rows"].push_back(std::move(row));
    }
  }
  return merged;
}

std::vector<std::string> write_report(const json& doc, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) usage("--report: cannot create the folder '" + dir + "': " + ec.message());
  const fs::path root(dir);
  std::vector<std::string> written;
  auto emit = [&](const std::string& name, const std::string& text) {
    write_file(root / name, text);
    written.push_back(name);
  };
  emit("results.json", doc.dump(2) + "\n");

  // CSV: the rows flat, with their source's tool and device.
  {
    static const char* const keys[] = {"impl",      "backend",    "mode",    "scope",     "batch",
                                       "seq",       "tokens",     "layers",  "status",    "median_ms",
                                       "p90_ms",    "floor_ms",   "extra_memory_bytes", "peak_memory_bytes",
                                       "check",     "detail"};
    std::ostringstream o;
    o << "source_tool,source_device";
    for (const char* k : keys) o << "," << k;
    o << "\n";
    for (const json& row : doc["rows"]) {
      const std::int64_t src = int_of(row, "source");
      const json source = src >= 0 && std::size_t(src) < doc["sources"].size() ? doc["sources"][std::size_t(src)] : json::object();
      o << csv_field(str_of(source, "tool")) << "," << csv_field(str_of(source, "device"));
      for (const char* k : keys) o << "," << csv_field(json_cell(row, k));
      o << "\n";
    }
    emit("results.csv", o.str());
  }

  std::vector<ScopeTable> tables;
  for (const char* scope : {"experts", "block"}) {
    ScopeTable t = scope_table(doc, scope);
    if (!t.series.empty()) tables.push_back(std::move(t));
  }

  // Charts: only of what was measured.
  std::vector<std::pair<std::string, std::string>> charts;  // file, caption
  for (const ScopeTable& t : tables) {
    bool any_ok = false, any_memory = false;
    for (const auto& [key, row] : t.cell) {
      any_ok = any_ok || ok(*row);
      any_memory = any_memory || (ok(*row) && num_of(*row, "extra_memory_bytes"));
    }
    if (!any_ok) continue;
    const std::string& s = t.scope;
    emit("latency_" + s + ".svg", render_svg(make_chart(doc, t, Chart::latency)));
    charts.emplace_back("latency_" + s + ".svg", "latency, " + scope_title(s));
    if (!t.baseline.empty()) {
      emit("speedup_" + s + ".svg", render_svg(make_chart(doc, t, Chart::speedup)));
      charts.emplace_back("speedup_" + s + ".svg", "speed-up over " + t.baseline + ", " + scope_title(s));
    }
    if (any_memory) {
      emit("memory_" + s + ".svg", render_svg(make_chart(doc, t, Chart::memory)));
      charts.emplace_back("memory_" + s + ".svg", "extra memory, " + scope_title(s));
    }
  }
  // PNG copies where a renderer is present; the SVGs are the report.
  if (!charts.empty() && std::system("command -v rsvg-convert >/dev/null 2>&1") == 0)
    for (const auto& [file, caption] : charts) {
      const std::string png = file.substr(0, file.size() - 4) + ".png";
      const std::string cmd = "rsvg-convert -o " + shell_quote((root / png).string()) + " " +
                              shell_quote((root / file).string()) + " >/dev/null 2>&1";
      if (std::system(cmd.c_str()) == 0) written.push_back(png);
    }

  std::ostringstream md;
  md << "# " << md_escape(str_of(doc, "title").empty() ? "moekit benchmark" : str_of(doc, "title")) << "\n\n";
  md << "| source | device | layer | command |\n|---|---|---|---|\n";
  for (const json& s : doc["sources"])
    md << "| " << md_escape(str_of(s, "tool")) << " | " << md_escape(str_of(s, "device")) << " | "
       << md_escape(str_of(s, "layer")) << " | `" << md_escape(str_of(s, "command")) << "` |\n";
  for (const json& s : doc["sources"])
    if (s.contains("notes") && s["notes"].is_array())
      for (const json& n : s["notes"])
        if (n.is_string()) md << "\n- " << md_escape(str_of(s, "tool")) << ": " << md_escape(n.get<std::string>());
  md << "\n";
  for (const auto& [file, caption] : charts) md << "\n![" << caption << "](" << file << ")\n";
  for (const ScopeTable& t : tables) {
    const std::string what = scope_title(t.scope) + layers_note(doc);
    md << "\n## " << what << ": median latency (ms)\n\n";
    markdown_table(md, t, Chart::latency);
    if (!t.baseline.empty()) {
      md << "\n## " << what << ": speed-up over " << t.baseline << "\n\n";
      markdown_table(md, t, Chart::speedup);
    }
    md << "\n## " << what << ": extra memory beyond weights and inputs (MiB)\n\n";
    markdown_table(md, t, Chart::memory);
  }
  // Output checks (hf_compare.py) and the reasons of rows that have no time.
  std::ostringstream checks, notes;
  std::vector<std::string> seen;
  for (const json& row : doc["rows"]) {
    if (const std::string c = str_of(row, "check"); !c.empty())
      checks << "| " << md_escape(series_of(row)) << " | " << str_of(row, "scope") << " | " << point_of(row).label()
             << " | " << md_escape(c) << " |\n";
    const std::string d = str_of(row, "detail");
    if (!ok(row) && !d.empty()) {
      const std::string line = series_of(row) + ", " + str_of(row, "scope") + ": " + status_text(row) + ": " + d;
      if (std::find(seen.begin(), seen.end(), line) == seen.end()) seen.push_back(line);
    }
  }
  if (!checks.str().empty())
    md << "\n## Output checks\n\n| series | scope | point | check |\n|---|---|---|---|\n" << checks.str();
  if (!seen.empty()) {
    md << "\n## Rows without a time\n\n";
    for (const std::string& line : seen) md << "- " << md_escape(line) << "\n";
  }
  emit("results.md", md.str());
  return written;
}

}  // namespace moekit_cli
