// `moekit bench`: times the experts call and the whole MoE block of one layer shape (or a stack of
// them) on each backend, against a floor made of ceilings measured in the same run (DESIGN §3).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <tuple>

#include "bench.hpp"
#include "cli.hpp"
#include "commands.hpp"
#include "moekit/presets.hpp"
#include "moekit/safetensors.hpp"
#include "report.hpp"
#include "sysinfo.hpp"
#include "table.hpp"

namespace moekit_cli {
namespace {

struct BenchOptions {
  std::string preset;
  std::int64_t hidden = 0, intermediate = 0, experts = 0, top_k = 0;
  CLI::Option *hidden_opt = nullptr, *intermediate_opt = nullptr, *experts_opt = nullptr, *top_k_opt = nullptr;
  std::string tokens = "1,16,128";
  std::string batch, seq;
  CLI::Option *tokens_opt = nullptr, *batch_opt = nullptr, *seq_opt = nullptr, *dtype_opt = nullptr,
              *layer_opt = nullptr;
  int layers = 1;
  std::string scope = "both";
  std::string model;
  int layer = -1;
  std::string report;
  std::string backends;
  std::string device;
  std::string dtype = "bf16";
  std::string graph;  // empty: on for cuda, off for cpu
  int warmup = 2;
  int repeat = 10;
  int threads = 0;
  std::uint64_t seed = 0;
  std::string json, csv;
  bool quiet = false;
};

std::string shared_text(const moekit::SharedExperts& s) {
  if (s.count == 0) return "-";
  return std::to_string(s.count) + " x " + std::to_string(s.intermediate) + (s.sigmoid_gate ? ", sigmoid-gated" : "");
}

int print_presets() {
  Table table({{"preset", Table::Align::left},
               {"H"},
               {"I"},
               {"E"},
               {"K"},
               {"shared", Table::Align::left},
               {"router", Table::Align::left},
               {"experts", Table::Align::left}});
  for (const moekit::Preset& p : moekit::presets()) {
    std::string layout(moekit::activation_name(p.options.activation));
    if (p.options.gate_layout == moekit::GateLayout::interleaved) layout += ", interleaved";
    if (p.options.transposed) layout += ", transposed";
    if (p.bias) layout += ", biases";
    table.add_row({std::string(p.name), std::to_string(p.hidden), std::to_string(p.intermediate),
                   std::to_string(p.experts), std::to_string(p.top_k), shared_text(p.shared),
                   moekit::describe(p.router), layout});
  }
  table.print(std::cout);
  return 0;
}

// A preset, with any dims given on the command line overriding its own; or the dims alone, routed
// by softmax top-k with renormalisation.
// --model DIR: the dims, router and layout of the checkpoint's config.json, the dtype of its
// expert weights.
BenchShape model_shape(const BenchOptions& o) {
  BenchShape s;
  s.config = moekit::load_model_config(o.model);
  const moekit::ModelConfig& c = s.config;
  s.first_layer = o.layer < 0 ? moekit::first_moe_layer(c) : o.layer;
  moekit::require_moe_layer(c, s.first_layer);
  s.model_dir = o.model;
  s.name = c.model_type + " layer " + std::to_string(s.first_layer);
  s.model = o.model;
  take_expert_dims(s, c);
  if (const std::int64_t Is = c.shared_intermediate(); Is > 0)
    s.shared = "shared expert " + std::to_string(Is) + (c.shared_expert_gate ? ", sigmoid-gated" : "");
  const auto checkpoint = moekit::safetensors::Checkpoint::open(o.model);
  const std::string prefix = c.layer_prefix(s.first_layer) + "experts.";
  const std::string probe = c.naming == moekit::ExpertNaming::fused     ? prefix + "gate_up_proj"
                            : c.naming == moekit::ExpertNaming::mixtral ? prefix + "0.w1.weight"
                                                                        : prefix + "0.gate_proj.weight";
  if (!checkpoint.contains(probe))
    usage("--model " + o.model + ": the checkpoint has no tensor '" + probe + "' (layer " +
          std::to_string(s.first_layer) + ")");
  s.dtype = checkpoint.view(probe).dtype;
  if (o.dtype_opt->count() && moekit::parse_dtype(o.dtype) != s.dtype)
    usage("--dtype " + o.dtype + ": the checkpoint's expert weights are " + std::string(moekit::dtype_name(s.dtype)) +
          "; drop --dtype with --model");
  return s;
}

BenchShape resolve_shape(const BenchOptions& o) {
  BenchShape s;
  const bool any_dim = o.hidden_opt->count() || o.intermediate_opt->count() || o.experts_opt->count() ||
                       o.top_k_opt->count();
  if (!o.model.empty()) {
    if (!o.preset.empty()) usage("--model and --preset are exclusive: the checkpoint's config.json gives the shape");
    if (any_dim) usage("--model takes H, I, E and K from config.json; drop --hidden, --intermediate, --experts, --top-k");
    return model_shape(o);
  }
  if (o.layer_opt->count()) usage("--layer needs --model DIR (a checkpoint's layer)");
  if (!o.preset.empty()) {
    const moekit::Preset& p = moekit::find_preset(o.preset);
    s = experts_shape_of(p);
    if (p.shared.count) s.shared = "shared expert " + shared_text(p.shared);
    s.config = moekit::preset_model_config(p);
  } else {
    if (!any_dim)
      usage("bench needs --preset NAME (--preset help lists them) or --hidden, --intermediate, --experts and --top-k");
    std::vector<std::string> missing;
    if (!o.hidden_opt->count()) missing.push_back("--hidden");
    if (!o.intermediate_opt->count()) missing.push_back("--intermediate");
    if (!o.experts_opt->count()) missing.push_back("--experts");
    if (!o.top_k_opt->count()) missing.push_back("--top-k");
    if (!missing.empty()) usage("without --preset, bench also needs " + join(missing));
    s.name = "custom";
    s.router = {moekit::RouterConfig::Kind::softmax_topk, /*norm_topk_prob=*/true};
    // The block of sizes alone: a qwen3_moe-style one (softmax top-k router, no shared expert).
    s.config = moekit::default_model_config("qwen3_moe");
    s.config.router = s.router;
  }
  std::vector<std::string> overrides;
  for (auto [opt, value, dim] : {std::tuple{o.hidden_opt, o.hidden, &s.hidden},
                                 {o.intermediate_opt, o.intermediate, &s.intermediate},
                                 {o.experts_opt, o.experts, &s.experts},
                                 {o.top_k_opt, o.top_k, &s.top_k}}) {
    if (!opt->count()) continue;
    *dim = value;
    overrides.push_back(opt->get_name() + " " + std::to_string(value));
  }
  if (!o.preset.empty()) s.overrides = join(overrides);

  const auto dtype = moekit::parse_dtype(o.dtype);
  if (!dtype || !(*dtype == moekit::DType::bf16 || *dtype == moekit::DType::f16 || *dtype == moekit::DType::f32))
    usage("unsupported dtype '" + o.dtype + "'; valid: bf16, f16, f32");
  s.dtype = *dtype;
  s.config.hidden_size = s.hidden;
  s.config.moe_intermediate_size = s.intermediate;
  s.config.num_experts = s.experts;
  s.config.num_experts_per_tok = s.top_k;
  s.config.experts = s.options;
  s.config.has_bias = s.bias;
  return s;
}

// --tokens LIST, or --batch LIST x --seq LIST (T = batch x seq, batch-major).
std::vector<BenchPoint> resolve_points(const BenchOptions& o) {
  const bool by_shape = o.batch_opt->count() || o.seq_opt->count();
  if (by_shape && o.tokens_opt->count())
    usage("--tokens and --batch/--seq are exclusive: give either --tokens LIST or --batch LIST --seq LIST (T = batch x seq)");
  std::vector<BenchPoint> points;
  if (!by_shape) {
    for (std::int64_t T : parse_positive_list("--tokens", o.tokens)) points.push_back({0, 0, T});
    return points;
  }
  const auto batches = parse_positive_list("--batch", o.batch_opt->count() ? o.batch : "1");
  const auto seqs = parse_positive_list("--seq", o.seq_opt->count() ? o.seq : "1");
  for (std::int64_t b : batches)
    for (std::int64_t q : seqs) {
      std::int64_t T;
      if (__builtin_mul_overflow(b, q, &T)) usage("--batch x --seq overflows: " + std::to_string(b) + " x " + std::to_string(q));
      points.push_back({b, q, T});
    }
  return points;
}

std::vector<Scope> parse_scope(const std::string& text) {
  if (text == "experts") return {Scope::experts};
  if (text == "block") return {Scope::block};
  if (text == "both") return {Scope::experts, Scope::block};
  usage("--scope must be experts, block or both, got '" + text + "'");
}

// Routes one token, so a router that cannot work with these sizes (say n_group not dividing an
// overridden E) fails now, before gigabytes are filled.
void check_router(const BenchShape& s) {
  std::vector<float> logits(std::size_t(s.experts), 0.0f), bias;
  if (s.router.kind == moekit::RouterConfig::Kind::sigmoid_grouped) bias.assign(std::size_t(s.experts), 0.0f);
  std::vector<std::int32_t> idx(std::size_t(s.top_k));
  std::vector<float> w(std::size_t(s.top_k));
  moekit::route(s.router, logits.data(), 1, s.experts, s.top_k, bias.empty() ? nullptr : bias.data(), idx.data(),
                w.data());
}

// CUDA graphs are the default on the GPU, where they are how a framework would call a sync-free
// backend; on the CPU there is nothing to capture.
GraphMode parse_graph(const std::string& text, moekit::DeviceType device) {
  const bool cuda = device == moekit::DeviceType::cuda;
  if (text.empty()) return cuda ? GraphMode::on : GraphMode::off;
  GraphMode mode;
  if (text == "off")
    mode = GraphMode::off;
  else if (text == "on")
    mode = GraphMode::on;
  else if (text == "both")
    mode = GraphMode::both;
  else
    usage("--graph must be on, off or both, got '" + text + "'");
  if (!cuda && mode != GraphMode::off)
    usage("--graph " + text + " needs --device cuda: CUDA graphs do not exist on the cpu (use --graph off)");
  return mode;
}

std::ofstream open_output(const std::string& path, const char* option) {
  std::ofstream out(path);
  if (!out) usage(std::string(option) + ": cannot write '" + path + "'");
  return out;
}

int run_bench_command(const BenchOptions& o) {
  if (o.preset == "help") return print_presets();

  BenchPlan plan;
  plan.points = resolve_points(o);
  for (const BenchPoint& p : plan.points) plan.tokens.push_back(p.tokens);
  plan.scopes = parse_scope(o.scope);
  require_positive("--layers", o.layers);
  plan.layers = o.layers;
  plan.shape = resolve_shape(o);
  plan.command_line = command_line();
  require_non_negative("--warmup", o.warmup);
  require_positive("--repeat", o.repeat);
  require_non_negative("--threads", o.threads);
  check_sizes(plan.shape, plan.tokens);
  check_router(plan.shape);

  const moekit::Registry& registry = moekit::default_registry();
  plan.device = o.device.empty() ? best_device(registry) : parse_device(o.device);
  plan.backends = select_backends(registry, plan.device, o.backends);
  plan.graph = parse_graph(o.graph, plan.device);
  plan.warmup = o.warmup;
  plan.repeat = o.repeat;
  plan.threads = o.threads;
  plan.seed = o.seed;
  plan.quiet = o.quiet;
  check_memory(plan);

  // Opened now so that a bad path fails before minutes of measuring.
  std::ofstream json, csv;
  if (!o.json.empty()) json = open_output(o.json, "--json");
  if (!o.csv.empty()) csv = open_output(o.csv, "--csv");
  if (!o.report.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.report, ec);
    if (ec || !std::filesystem::is_directory(o.report)) usage("--report: cannot create the folder '" + o.report + "'");
  }

  const DeviceDescription device = describe_device(plan.device, plan.threads);
  print_bench_header(plan, device);
  std::cout << std::flush;
  const bool cuda = plan.device == moekit::DeviceType::cuda;
  if (!plan.quiet) std::cerr << "measuring the ceilings ...\n";
  const Ceilings ceilings =
      cuda ? measure_cuda_ceilings(plan.shape.dtype, plan.threads) : measure_ceilings(plan.shape.dtype, plan.threads);
  print_ceilings(ceilings);
  std::cout << std::flush;

  const bool peak_rss_reset = reset_peak_rss();
  const std::vector<BenchRow> rows = cuda ? run_bench_cuda(plan, ceilings) : run_bench(plan, ceilings);
  print_bench_table(plan, rows, peak_rss_reset);

  if (json.is_open()) write_bench_json(json, plan, device, ceilings, rows);
  if (csv.is_open()) write_bench_csv(csv, plan, device, ceilings, rows);
  if ((json.is_open() && !json) || (csv.is_open() && !csv)) usage("writing the --json or --csv file failed");
  if (!o.report.empty()) {
    const auto files = write_report(bench_report_document(plan, device, ceilings, rows), o.report);
    std::cout << "\nreport: " << files.size() << " files in " << o.report << ": " << join(files) << "\n";
  }

  for (const BenchRow& r : rows)
    if (r.status == BenchRow::Status::failed) return kExitMismatch;
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& parent) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* sub = parent.add_subcommand("bench", "time the experts call and the MoE block of one layer shape on each backend");
  sub->add_option("--preset", o->preset, "a model's expert shape and router; 'help' lists them");
  sub->add_option("--model", o->model, "a checkpoint folder (config.json + *.safetensors): benchmark its layer");
  o->layer_opt = sub->add_option("--layer", o->layer, "with --model: the layer (default: the first MoE layer)");
  o->hidden_opt = sub->add_option("--hidden", o->hidden, "H (overrides the preset's)");
  o->intermediate_opt = sub->add_option("--intermediate", o->intermediate, "I per expert (overrides the preset's)");
  o->experts_opt = sub->add_option("--experts", o->experts, "E (overrides the preset's)");
  o->top_k_opt = sub->add_option("--top-k", o->top_k, "K (overrides the preset's)");
  o->tokens_opt = sub->add_option("--tokens", o->tokens, "comma-separated token counts T")->capture_default_str();
  o->batch_opt = sub->add_option("--batch", o->batch, "comma-separated batch sizes (T = batch x seq; not with --tokens)");
  o->seq_opt = sub->add_option("--seq", o->seq, "comma-separated sequence lengths (T = batch x seq)");
  sub->add_option("--layers", o->layers, "N independent MoE layers in a row, each with its own weights; the stack is timed")
      ->capture_default_str();
  sub->add_option("--scope", o->scope, "experts (the experts call), block (router + experts + shared) or both")
      ->capture_default_str();
  sub->add_option("--backends", o->backends, "comma-separated backends (default: all available on the device)");
  sub->add_option("--device", o->device, "cpu or cuda (default: cuda when available, else cpu)");
  o->dtype_opt = sub->add_option("--dtype", o->dtype, "bf16, f16 or f32")->capture_default_str();
  sub->add_option("--graph", o->graph,
                  "CUDA graphs: on (capture one call per backend and T, time its replays), off, or both "
                  "(default: on for cuda, off for cpu)");
  sub->add_option("--warmup", o->warmup, "untimed calls per backend and T")->capture_default_str();
  sub->add_option("--repeat", o->repeat, "timed calls per backend and T")->capture_default_str();
  sub->add_option("--threads", o->threads, "CPU threads (0 = all)")->capture_default_str();
  sub->add_option("--seed", o->seed, "seed of the random weights, inputs and logits")
      ->check(unsigned_integer())
      ->capture_default_str();
  sub->add_option("--json", o->json, "also write every row, the ceilings and the device to this JSON file");
  sub->add_option("--csv", o->csv, "also write every row to this CSV file");
  sub->add_option("--report", o->report,
                  "write results.json, results.csv, results.md and SVG charts (latency, speed-up, memory) into this folder");
  sub->add_flag("--quiet", o->quiet, "no progress lines on stderr");
  return {sub, [o] { return run_bench_command(*o); }};
}

}  // namespace moekit_cli
