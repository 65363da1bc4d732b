// What `moekit bench` prints and writes: the header, the ceilings, the per-(T, backend) table,
// a DESIGN §3-style summary, and the same data as JSON or CSV.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "cli.hpp"
#include "report.hpp"
#include "table.hpp"

namespace moekit_cli {
namespace {

std::string layout(const BenchShape& s) {
  std::string text = std::string(moekit::activation_name(s.options.activation));
  if (s.options.has_gate) text += ", " + std::string(moekit::gate_layout_name(s.options.gate_layout)) + " gate/up";
  if (s.options.transposed) text += ", transposed";
  if (s.bias) text += ", biases";
  return text;
}

const char* status_name(BenchRow::Status s) {
  switch (s) {
    case BenchRow::Status::ok: return "ok";
    case BenchRow::Status::skipped: return "skipped";
    case BenchRow::Status::failed: return "failed";
    case BenchRow::Status::not_capturable: return "n/a";
  }
  return "?";
}

bool timed(const BenchRow& r) { return r.status == BenchRow::Status::ok; }

double rate(double amount, const BenchRow& r) { return timed(r) ? amount / r.median_s : NAN; }

std::optional<std::uint64_t> rss_growth(const BenchRow& r) {
  if (!r.peak_rss || !r.rss_before) return std::nullopt;
  return *r.peak_rss > *r.rss_before ? *r.peak_rss - *r.rss_before : 0;
}

std::string ms(double seconds) { return significant(seconds * 1e3, 4); }

bool on_cuda(const BenchPlan& plan) { return plan.device == moekit::DeviceType::cuda; }

std::optional<std::uint64_t> dev_growth(const BenchRow& r) {
  if (!r.dev_peak || !r.dev_before) return std::nullopt;
  return *r.dev_peak > *r.dev_before ? *r.dev_peak - *r.dev_before : 0;
}

std::string graph_name(bool graph) { return graph ? "on" : "off"; }

// A summary column per backend and graph setting; "grouped_mm graph" is timed as graph replays.
struct SummaryColumn {
  std::string backend;
  bool graph = false;
  std::string title;
};

std::vector<SummaryColumn> summary_columns(const BenchPlan& plan) {
  std::vector<SummaryColumn> cols;
  for (const moekit::Backend* b : plan.backends)
    for (bool graph : graph_settings(plan.graph)) {
      const std::string name(b->name());
      cols.push_back({name, graph, graph ? name + " graph" : name});
    }
  return cols;
}

bool by_shape(const BenchPlan& plan) {
  return std::any_of(plan.points.begin(), plan.points.end(), [](const BenchPoint& p) { return p.batch > 0; });
}

bool same_point(const BenchRow& r, const BenchPoint& p) { return r.tokens == p.tokens && r.batch == p.batch && r.seq == p.seq; }

std::string shape_cell(const BenchRow& r) { return std::to_string(r.batch) + "x" + std::to_string(r.seq); }

void print_summary(const BenchPlan& plan, const std::vector<BenchRow>& rows) {
  const std::vector<SummaryColumn> columns = summary_columns(plan);
  const bool shapes = by_shape(plan);
  std::vector<Table::Column> cols;
  if (shapes) cols.push_back({"batch x seq"});
  cols.push_back({"T"});
  cols.push_back({"scope", Table::Align::left});
  cols.push_back({"floor ms"});
  for (const SummaryColumn& c : columns) cols.push_back({c.title});
  cols.push_back({"best / floor"});
  Table table(cols);
  for (const BenchPoint& p : plan.points)
    for (Scope scope : plan.scopes) {
      std::vector<std::string> cells;
      if (shapes) cells.push_back(std::to_string(p.batch) + "x" + std::to_string(p.seq));
      cells.push_back(std::to_string(p.tokens));
      cells.push_back(scope_name(scope));
      double best = INFINITY, floor_s = NAN;
      for (const BenchRow& r : rows) {
        if (!same_point(r, p) || r.scope != scope) continue;
        floor_s = r.floor_s;
        if (timed(r)) best = std::min(best, r.median_s);
      }
      cells.push_back(ms(floor_s));
      for (const SummaryColumn& c : columns)
        for (const BenchRow& r : rows)
          if (same_point(r, p) && r.scope == scope && r.backend == c.backend && r.graph == c.graph)
            cells.push_back(timed(r) ? ms(r.median_s) : status_name(r.status));
      cells.push_back(std::isfinite(best) && floor_s > 0 ? fixed(best / floor_s, 2) + "x" : "-");
      table.add_row(std::move(cells));
    }
  std::cout << "\nsummary: median ms per backend (as in DESIGN §3)";
  if (plan.layers > 1) std::cout << ", " << plan.layers << " layers in a row";
  std::cout << "\n";
  table.print(std::cout);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string number(double v) { return std::isfinite(v) ? significant(v, 6) : ""; }

}  // namespace

void print_bench_header(const BenchPlan& plan, const DeviceDescription& device) {
  const BenchShape& s = plan.shape;
  std::cout << "moekit bench: device " << device.type << " (" << device.text << ")\n";
  std::cout << "layer: " << s.name;
  if (!s.model.empty()) std::cout << " (" << s.model << ")";
  if (!s.overrides.empty()) std::cout << " with " << s.overrides;
  std::cout << "  " << s.dims() << "  " << layout(s) << "  router: " << moekit::describe(s.router)
            << "  expert weights " << bytes_iec(weight_bytes(s)) << "\n";
  std::cout << "timed: ";
  for (std::size_t i = 0; i < plan.scopes.size(); ++i)
    std::cout << (i ? "; " : "")
              << (plan.scopes[i] == Scope::experts ? "experts = the experts call"
                                                   : "block = the MoE block: router + experts" +
                                                         (s.shared.empty() ? std::string() : " + " + s.shared));
  if (plan.layers > 1)
    std::cout << "; each for " << plan.layers << " layers in a row (independent weights, the output of one the input of the next)";
  std::cout << "\n";
  if (on_cuda(plan)) {
    const char* graph = plan.graph == GraphMode::on     ? "graph on: one call captured per backend and T, its replays timed"
                        : plan.graph == GraphMode::both ? "graph off and on (a row each)"
                                                        : "graph off: each call issued on the stream";
    std::cout << "timing: median and p90 of " << plan.repeat << " calls after " << plan.warmup
              << " warm-up calls, each alone between two CUDA events on a non-blocking stream, then a sync; " << graph
              << "; data on cuda:0, routing from the layer's router on N(0, 1) logits, zero correction bias (on the host), seed " << plan.seed
              << "\n";
  } else {
    std::cout << "timing: median and p90 of " << plan.repeat << " calls after " << plan.warmup
              << " warm-up calls (steady_clock), routing from the layer's router on N(0, 1) logits, zero correction bias, seed " << plan.seed
              << "\n";
  }
}

void print_ceilings(const Ceilings& c) {
  std::cout << "\nceilings, measured now on " << c.where << ":\n";
  std::cout << "  copy  " << fixed(c.copy.bytes_per_s / 1e9, 1) << " GB/s  " << c.copy.method
            << ", counted as read + write, " << c.copy.statistic << " of " << c.copy.reps;
  if (c.copy.statistic != "best") std::cout << " (best " << fixed(c.copy.best_bytes_per_s / 1e9, 1) << " GB/s)";
  std::cout << "\n";
  for (const GemmRate& g : c.gemm_candidates) {
    const bool used = g.library == c.gemm.library && g.routine == c.gemm.routine;
    std::cout << "  GEMM  " << fixed(g.flops_per_s / 1e9, 1) << " GFLOP/s  " << g.library << " " << g.routine << ", "
              << g.n << "^3, " << g.statistic << " of " << g.reps << (used ? "  <- the floor's GEMM rate" : "")
              << (g.correct ? "" : "  (wrong product: not used)") << "\n";
  }
  for (const std::string& note : c.notes) std::cout << "  GEMM  -  " << note << "\n";
  std::cout << "floor = max(bytes of the hit experts' weights / copy bandwidth, FLOPs / GEMM rate)\n";
}

namespace {

// The note of a row that was not timed.
std::string untimed_note(const BenchRow& r) {
  switch (r.status) {
    case BenchRow::Status::skipped: return "SKIP: " + r.detail;
    case BenchRow::Status::not_capturable: return "n/a: " + r.detail;
    default: return "FAIL: " + r.detail;
  }
}

void print_cuda_table(const BenchPlan& plan, const std::vector<BenchRow>& rows) {
  Table table({{"b x s"},
               {"T"},
               {"backend", Table::Align::left},
               {"scope", Table::Align::left},
               {"graph", Table::Align::left},
               {"hit"},
               {"median ms"},
               {"p90 ms"},
               {"floor ms"},
               {"x floor"},
               {"GB/s"},
               {"GFLOP/s"},
               {"workspace"},
               {"peak dev"},
               {"+dev"},
               {"note", Table::Align::left}});
  for (const BenchRow& r : rows) {
    const std::string hit = std::to_string(r.experts_hit) + "/" + std::to_string(plan.shape.experts * plan.layers);
    const std::string bs = r.batch ? shape_cell(r) : "-";
    if (!timed(r)) {
      table.add_row({bs, std::to_string(r.tokens), r.backend, scope_name(r.scope), graph_name(r.graph), hit, "-", "-", ms(r.floor_s), "-", "-",
                     "-", r.status == BenchRow::Status::skipped ? "-" : bytes_iec(r.workspace_bytes), "-", "-",
                     untimed_note(r)});
      continue;
    }
    const auto growth = dev_growth(r);
    table.add_row({bs, std::to_string(r.tokens), r.backend, scope_name(r.scope), graph_name(r.graph), hit, ms(r.median_s), ms(r.p90_s),
                   ms(r.floor_s), fixed(r.median_s / r.floor_s, 2), fixed(rate(double(r.hit_bytes), r) / 1e9, 1),
                   fixed(rate(r.flops, r) / 1e9, 1), bytes_iec(r.workspace_bytes),
                   r.dev_peak ? bytes_iec(*r.dev_peak) : "-", growth ? bytes_iec(*growth) : "-", r.detail});
  }
  std::cout << "\n";
  table.print(std::cout);
  std::cout << "hit = experts hit by the routing (summed over the layers); GB/s = bytes of the hit experts' weights "
               "(block: + router and shared weights) / median; GFLOP/s = 2 x multiply-adds / median; x floor = median / "
               "floor; graph on = replays of one captured call (of the whole stack)\n"
               "workspace = the backend's scratch (Backend::workspace_bytes), cudaMalloc'd by the bench before the "
               "calls; peak dev = the most device memory in use (cudaMemGetInfo total - free, device-wide: other "
               "processes count) after any warm-up or timed call, weights, inputs and workspace included; +dev = its "
               "rise above the use just before the backend's first call (or capture): what the backend itself added "
               "(its kernels' lazy loading on first use, graph instantiation, a library's own workspace, any "
               "allocation of its own); 0 in the steady state of a sync-free backend. An allocation freed within one "
               "call is not seen\n";
  print_summary(plan, rows);
}

}  // namespace

void print_bench_table(const BenchPlan& plan, const std::vector<BenchRow>& rows, bool peak_rss_reset) {
  if (on_cuda(plan)) return print_cuda_table(plan, rows);
  Table table({{"b x s"},
               {"T"},
               {"backend", Table::Align::left},
               {"scope", Table::Align::left},
               {"hit"},
               {"median ms"},
               {"p90 ms"},
               {"floor ms"},
               {"x floor"},
               {"GB/s"},
               {"GFLOP/s"},
               {"workspace"},
               {"peak RSS"},
               {"+RSS"},
               {"note", Table::Align::left}});
  for (const BenchRow& r : rows) {
    const std::string hit = std::to_string(r.experts_hit) + "/" + std::to_string(plan.shape.experts * plan.layers);
    const std::string bs = r.batch ? shape_cell(r) : "-";
    if (!timed(r)) {
      table.add_row({bs, std::to_string(r.tokens), r.backend, scope_name(r.scope), hit, "-", "-", ms(r.floor_s), "-",
                     "-", "-", "-", "-", "-", untimed_note(r)});
      continue;
    }
    const auto growth = rss_growth(r);
    table.add_row({bs, std::to_string(r.tokens), r.backend, scope_name(r.scope), hit, ms(r.median_s), ms(r.p90_s), ms(r.floor_s),
                   fixed(r.median_s / r.floor_s, 2), fixed(rate(double(r.hit_bytes), r) / 1e9, 1),
                   fixed(rate(r.flops, r) / 1e9, 1), bytes_iec(r.workspace_bytes),
                   r.peak_rss ? bytes_iec(*r.peak_rss) : "-", growth ? bytes_iec(*growth) : "-", r.detail});
  }
  std::cout << "\n";
  table.print(std::cout);
  std::cout << "hit = experts hit by the routing (summed over the layers); GB/s = bytes of the hit experts' weights "
               "(block: + router and shared weights) / median; GFLOP/s = 2 x multiply-adds / median; x floor = median / floor\n";
  if (peak_rss_reset)
    std::cout << "peak RSS = the process's resident high-water mark (VmHWM) during that backend's calls, weights and "
                 "inputs included (reset before each backend via /proc/self/clear_refs); +RSS = its rise above the "
                 "resident set just before the calls: the workspace and anything else the backend touched\n";
  else
    std::cout << "peak RSS = the process's resident high-water mark since it started (the kernel refused the reset "
                 "through /proc/self/clear_refs); +RSS is only meaningful for the first backend\n";
  print_summary(plan, rows);
}

void write_bench_json(std::ostream& out, const BenchPlan& plan, const DeviceDescription& device,
                      const Ceilings& ceilings, const std::vector<BenchRow>& rows) {
  using nlohmann::json;
  const BenchShape& s = plan.shape;
  json j;
  j["tool"] = "moekit bench";
  j["device"] = {{"type", device.type}, {"description", device.text}, {"cpu_model", device.cpu_model},
                 {"isa", device.isa}, {"threads", device.threads}};
  if (device.gpu) {
    const GpuDescription& g = *device.gpu;
    j["device"]["gpu"] = {{"index", g.index},
                          {"name", g.name},
                          {"compute_capability", std::to_string(g.major) + "." + std::to_string(g.minor)},
                          {"sms", g.sms},
                          {"memory_bytes", g.memory_bytes},
                          {"l2_bytes", g.l2_bytes},
                          {"driver_version", g.driver_version},
                          {"runtime_version", g.runtime_version}};
  }
  j["layer"] = {{"name", s.name},
                {"model", s.model},
                {"overrides", s.overrides},
                {"hidden", s.hidden},
                {"intermediate", s.intermediate},
                {"experts", s.experts},
                {"top_k", s.top_k},
                {"dtype", moekit::dtype_name(s.dtype)},
                {"activation", moekit::activation_name(s.options.activation)},
                {"gate_layout", moekit::gate_layout_name(s.options.gate_layout)},
                {"transposed", s.options.transposed},
                {"bias", s.bias},
                {"router", moekit::describe(s.router)},
                {"weight_bytes", weight_bytes(s)},
                {"layers", plan.layers},
                {"model_dir", s.model_dir},
                {"first_layer", s.first_layer}};
  j["settings"] = {{"warmup", plan.warmup},
                   {"repeat", plan.repeat},
                   {"threads", plan.threads},
                   {"seed", plan.seed},
                   {"graph", plan.graph == GraphMode::both ? "both" : graph_name(plan.graph == GraphMode::on)}};
  json gemms = json::array();
  for (const GemmRate& g : ceilings.gemm_candidates)
    gemms.push_back({{"library", g.library},
                     {"routine", g.routine},
                     {"n", g.n},
                     {"flops_per_s", g.flops_per_s},
                     {"reps", g.reps},
                     {"statistic", g.statistic},
                     {"correct", g.correct}});
  j["ceilings"] = {{"threads", ceilings.threads},
                   {"measured_on", ceilings.where},
                   {"copy_bytes_per_s", ceilings.copy.bytes_per_s},
                   {"copy_best_bytes_per_s", ceilings.copy.best_bytes_per_s},
                   {"copy_buffer_bytes", ceilings.copy.buffer_bytes},
                   {"copy_method", ceilings.copy.method},
                   {"copy_statistic", ceilings.copy.statistic},
                   {"copy_reps", ceilings.copy.reps},
                   {"copy_counts", "read + write"},
                   {"gemm_flops_per_s", ceilings.gemm.flops_per_s},
                   {"gemm_library", ceilings.gemm.library},
                   {"gemm_routine", ceilings.gemm.routine},
                   {"gemm_candidates", gemms},
                   {"notes", ceilings.notes}};
  json out_rows = json::array();
  for (const BenchRow& r : rows) {
    json row = {{"backend", r.backend},
                {"scope", scope_name(r.scope)},
                {"batch", r.batch},
                {"seq", r.seq},
                {"tokens", r.tokens},
                {"layers", plan.layers},
                {"graph", graph_name(r.graph)},
                {"status", status_name(r.status)},
                {"experts_hit", r.experts_hit},
                {"hit_weight_bytes", r.hit_bytes},
                {"flops", r.flops},
                {"floor_ms", r.floor_s * 1e3}};
    if (!r.detail.empty()) row["detail"] = r.detail;
    if (timed(r)) {
      json times = json::array();
      for (double t : r.times_s) times.push_back(t * 1e3);
      row["median_ms"] = r.median_s * 1e3;
      row["p90_ms"] = r.p90_s * 1e3;
      row["min_ms"] = r.min_s * 1e3;
      row["times_ms"] = times;
      row["x_floor"] = r.median_s / r.floor_s;
      row["gb_per_s"] = rate(double(r.hit_bytes), r) / 1e9;
      row["gflop_per_s"] = rate(r.flops, r) / 1e9;
      row["workspace_bytes"] = r.workspace_bytes;
      if (r.peak_rss) row["peak_rss_bytes"] = *r.peak_rss;
      if (auto g = rss_growth(r)) row["rss_growth_bytes"] = *g;
      if (r.dev_before) row["device_before_bytes"] = *r.dev_before;
      if (r.dev_after_warmup) row["device_after_warmup_bytes"] = *r.dev_after_warmup;
      if (r.dev_after) row["device_after_bytes"] = *r.dev_after;
      if (r.dev_peak) row["peak_device_bytes"] = *r.dev_peak;
      if (auto g = dev_growth(r)) row["device_growth_bytes"] = *g;
    }
    out_rows.push_back(std::move(row));
  }
  j["rows"] = out_rows;
  out << j.dump(2) << "\n";
}

void write_bench_csv(std::ostream& out, const BenchPlan& plan, const DeviceDescription& device,
                     const Ceilings& ceilings, const std::vector<BenchRow>& rows) {
  const BenchShape& s = plan.shape;
  out << "device,device_description,layer,hidden,intermediate,experts,top_k,dtype,router,backend,tokens,status,"
         "experts_hit,hit_weight_bytes,flops,median_ms,p90_ms,min_ms,floor_ms,x_floor,gb_per_s,gflop_per_s,"
         "workspace_bytes,peak_rss_bytes,rss_growth_bytes,copy_gb_per_s,gemm_gflop_per_s,gemm_library,graph,gpu,"
         "peak_device_bytes,device_growth_bytes,device_before_bytes,device_after_warmup_bytes,device_after_bytes,"
         "detail,scope,batch,seq,layers\n";
  for (const BenchRow& r : rows) {
    const bool t = timed(r);
    const auto growth = rss_growth(r);
    const auto dgrowth = dev_growth(r);
    auto bytes = [&](const std::optional<std::uint64_t>& v) { return t && v ? std::to_string(*v) : std::string(); };
    const std::vector<std::string> cells{
        device.type, device.text, s.name, std::to_string(s.hidden), std::to_string(s.intermediate),
        std::to_string(s.experts), std::to_string(s.top_k), std::string(moekit::dtype_name(s.dtype)),
        moekit::describe(s.router), r.backend, std::to_string(r.tokens), status_name(r.status),
        std::to_string(r.experts_hit), std::to_string(r.hit_bytes), number(r.flops),
        t ? number(r.median_s * 1e3) : "", t ? number(r.p90_s * 1e3) : "", t ? number(r.min_s * 1e3) : "",
        number(r.floor_s * 1e3), t ? number(r.median_s / r.floor_s) : "",
        t ? number(rate(double(r.hit_bytes), r) / 1e9) : "", t ? number(rate(r.flops, r) / 1e9) : "",
        t ? std::to_string(r.workspace_bytes) : "", t && r.peak_rss ? std::to_string(*r.peak_rss) : "",
        t && growth ? std::to_string(*growth) : "", number(ceilings.copy.bytes_per_s / 1e9),
        number(ceilings.gemm.flops_per_s / 1e9), ceilings.gemm.library + " " + ceilings.gemm.routine,
        graph_name(r.graph), device.gpu ? device.gpu->name : "", bytes(r.dev_peak), bytes(dgrowth),
        bytes(r.dev_before), bytes(r.dev_after_warmup), bytes(r.dev_after), r.detail, scope_name(r.scope),
        std::to_string(r.batch), std::to_string(r.seq), std::to_string(plan.layers)};
    for (std::size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << csv_field(cells[i]);
    out << "\n";
  }
}

}  // namespace moekit_cli

namespace moekit_cli {

nlohmann::json bench_report_document(const BenchPlan& plan, const DeviceDescription& device,
                                     const Ceilings& ceilings, const std::vector<BenchRow>& rows) {
  using nlohmann::json;
  const BenchShape& s = plan.shape;
  const bool cuda = on_cuda(plan);
  std::string layer = s.name;
  if (!s.overrides.empty()) layer += " with " + s.overrides;
  layer += " (" + s.dims() + ")";
  if (plan.layers > 1) layer += " x " + std::to_string(plan.layers) + " layers";
  json source = {{"tool", "moekit bench"},
                 {"command", plan.command_line},
                 {"device", device.gpu ? device.gpu->name : device.text},
                 {"layer", layer},
                 {"notes", json::array()}};
  source["notes"].push_back("ceilings measured in the run: copy " + fixed(ceilings.copy.bytes_per_s / 1e9, 1) +
                            " GB/s, GEMM " + fixed(ceilings.gemm.flops_per_s / 1e12, 1) + " TFLOP/s (" +
                            ceilings.gemm.library + "); floor = max(bytes / copy rate, FLOPs / GEMM rate)");
  source["notes"].push_back(std::string("median of ") + std::to_string(plan.repeat) + " calls after " +
                            std::to_string(plan.warmup) + " warm-up calls" +
                            (cuda ? ", CUDA events; graph = replays of one captured call" : ", steady_clock"));
  source["notes"].push_back(cuda ? "extra memory = the backend's workspace + the device memory it added (cudaMemGetInfo)"
                                 : "extra memory = the rise of the resident set during the calls");
  json out_rows = json::array();
  for (const BenchRow& r : rows) {
    std::string status = status_name(r.status);
    if (r.status == BenchRow::Status::failed && r.detail.find("memory") != std::string::npos) status = "oom";
    json row = {{"source", 0},
                {"impl", "moekit"},
                {"backend", r.backend},
                {"mode", cuda ? (r.graph ? "graph" : "stream") : "cpu"},
                {"scope", scope_name(r.scope)},
                {"batch", r.batch},
                {"seq", r.seq},
                {"tokens", r.tokens},
                {"layers", plan.layers},
                {"status", status},
                {"floor_ms", r.floor_s * 1e3}};
    if (!r.detail.empty()) row["detail"] = r.detail;
    if (timed(r)) {
      row["median_ms"] = r.median_s * 1e3;
      row["p90_ms"] = r.p90_s * 1e3;
      if (cuda) {
        if (auto g = dev_growth(r)) row["extra_memory_bytes"] = r.workspace_bytes + *g;
        if (r.dev_peak) row["peak_memory_bytes"] = *r.dev_peak;
      } else {
        if (auto g = rss_growth(r)) row["extra_memory_bytes"] = *g;
        if (r.peak_rss) row["peak_memory_bytes"] = *r.peak_rss;
      }
    }
    out_rows.push_back(std::move(row));
  }
  return {{"schema", kReportSchema},
          {"title", "moekit bench: " + s.name + " on " + (device.gpu ? device.gpu->name : device.type)},
          {"sources", json::array({source})},
          {"rows", out_rows}};
}

}  // namespace moekit_cli
