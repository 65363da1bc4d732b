// `moekit tune`: times every candidate auto can run (batched_mm, grouped_mm, and each fused plan)
// on a preset's expert shape at each T on cuda:0, and writes the fastest per T to the JSON table
// that auto reads ($MOEKIT_TUNE_FILE; schema in include/moekit/tune.hpp). Entries for other
// devices, shapes or T already in the file are kept.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "commands.hpp"
#include "moekit/backend.hpp"
#include "moekit/presets.hpp"
#include "moekit/tune.hpp"
#include "table.hpp"
#if MOEKIT_HAVE_CUDA
#include "bench_cuda_data.hpp"
#endif

namespace moekit_cli {
namespace {

struct TuneOptions {
  std::string preset;
  std::string tokens = "1,4,16,64,128,512,2048,8192";
  std::string dtype = "bf16";
  std::string out = "moekit-tune.json";
  int warmup = 3;
  int repeat = 15;
  std::uint64_t seed = 0;
};

#if MOEKIT_HAVE_CUDA

bool same_key(const moekit::TuneEntry& a, const moekit::TuneEntry& b) {
  return a.device == b.device && a.hidden == b.hidden && a.intermediate == b.intermediate && a.experts == b.experts &&
         a.top_k == b.top_k && a.dtype == b.dtype && a.transposed == b.transposed && a.tokens == b.tokens;
}

// Median seconds of `repeat` replays of one captured call of the candidate.
double time_candidate(const moekit::ExpertsCall& call, const moekit::TuneCandidate& c, const cu::Stream& stream,
                      int warmup, int repeat) {
  const cu::DeviceBuffer ws(moekit::candidate_workspace_bytes(call, c), c.label() + "'s workspace");
  const moekit::RunContext ctx{0, stream.get()};
  const moekit::Workspace w{ws.get(), ws.bytes()};
  moekit::run_candidate(call, c, ctx, w);  // module load and first-touch outside the capture
  stream.synchronize(c.label());
  cudaGraph_t graph = nullptr;
  cu::check(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal), "tune: begin capture");
  try {
    moekit::run_candidate(call, c, ctx, w);
  } catch (...) {
    cudaStreamEndCapture(stream.get(), &graph);
    if (graph) cudaGraphDestroy(graph);
    throw;
  }
  cu::check(cudaStreamEndCapture(stream.get(), &graph), "tune: end capture");
  cudaGraphExec_t exec = nullptr;
  cu::check(cudaGraphInstantiate(&exec, graph, 0), "tune: instantiate");
  const cu::Event start, stop;
  std::vector<double> times;
  for (int i = 0; i < warmup + repeat; ++i) {
    start.record(stream);
    cu::check(cudaGraphLaunch(exec, stream.get()), "tune: replay");
    stop.record(stream);
    const double s = cu::elapsed_s(start, stop);
    if (i >= warmup) times.push_back(s);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

int run_tune(const TuneOptions& o) {
  if (o.preset.empty()) usage("tune needs --preset NAME (moekit bench --preset help lists them)");
  require_positive("--repeat", o.repeat);
  require_non_negative("--warmup", o.warmup);
  const moekit::Preset& p = moekit::find_preset(o.preset);
  BenchShape s = experts_shape_of(p);
  const auto dtype = moekit::parse_dtype(o.dtype);
  if (!dtype || !(*dtype == moekit::DType::bf16 || *dtype == moekit::DType::f16 || *dtype == moekit::DType::f32))
    usage("unsupported dtype '" + o.dtype + "'; valid: bf16, f16, f32");
  s.dtype = *dtype;
  const std::vector<std::int64_t> tokens = parse_positive_list("--tokens", o.tokens);

  if (const moekit::Support gpu = moekit::default_registry().get("auto", moekit::DeviceType::cuda).available(); !gpu.ok)
    usage("moekit tune measures the CUDA backends, which cannot run here: " + gpu.reason);
  moekit::TuneTable table;
  if (std::filesystem::exists(o.out)) table = moekit::read_tune_table(o.out);
  const std::string device = moekit::cuda_device_name(0);
  std::cout << "moekit tune: " << s.name << " (H=" << s.hidden << " I=" << s.intermediate << " E=" << s.experts
            << " K=" << s.top_k << " " << o.dtype << ") on " << device << ", graph replays, median of " << o.repeat
            << "\n\n";

  const cu::Stream stream;
  const DeviceWeights weights = upload_weights(s, o.seed, 0);
  Table out({{"T"}, {"winner", Table::Align::left}, {"ms"}, {"runner-up", Table::Align::left}, {"ms"}});
  for (std::int64_t T : tokens) {
    const BenchInputs host = make_inputs(s, T, o.seed, 0);
    const DeviceInputs inputs = upload_inputs(host);
    const moekit::ExpertsCall call = make_device_call(s, weights, inputs, T);
    std::vector<std::pair<double, moekit::TuneCandidate>> results;
    for (const moekit::TuneCandidate& c : moekit::tune_candidates(call)) {
      const double t = time_candidate(call, c, stream, o.warmup, o.repeat);
      std::cerr << "T=" << T << " " << c.label() << ": " << t * 1e3 << " ms\n";
      results.emplace_back(t, c);
    }
    if (results.empty()) continue;
    std::stable_sort(results.begin(), results.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    moekit::TuneEntry e{device,  s.hidden,  s.intermediate, s.experts, s.top_k, T, s.dtype, s.options.transposed,
                        results[0].second.backend, results[0].second.plan, results[0].first * 1e3};
    std::erase_if(table.entries, [&](const moekit::TuneEntry& x) { return same_key(x, e); });
    table.entries.push_back(e);
    const bool two = results.size() > 1;
    out.add_row({std::to_string(T), results[0].second.label(), fixed(results[0].first * 1e3, 3),
                 two ? results[1].second.label() : "-", two ? fixed(results[1].first * 1e3, 3) : "-"});
  }
  out.print(std::cout);
  moekit::write_tune_table(table, o.out);
  std::cout << "\nwrote " << o.out << " (" << table.entries.size()
            << " entries); auto reads it when MOEKIT_TUNE_FILE names it\n";
  return 0;
}

#else

int run_tune(const TuneOptions&) { usage("moekit tune measures the CUDA backends; this build has no CUDA support"); }

#endif

}  // namespace

Command add_tune_command(CLI::App& parent) {
  auto o = std::make_shared<TuneOptions>();
  CLI::App* sub = parent.add_subcommand("tune", "measure auto's candidates per T on cuda:0 and write its table");
  sub->add_option("--preset", o->preset, "a model's expert shape (moekit bench --preset help lists them)");
  sub->add_option("--tokens", o->tokens, "comma-separated token counts T")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "bf16, f16 or f32")->capture_default_str();
  sub->add_option("--out", o->out, "the table to write (entries of other shapes already there are kept)")
      ->capture_default_str();
  sub->add_option("--warmup", o->warmup, "untimed replays per candidate")->capture_default_str();
  sub->add_option("--repeat", o->repeat, "timed replays per candidate")->capture_default_str();
  sub->add_option("--seed", o->seed, "seed of the random weights and inputs")->capture_default_str();
  return {sub, [o] { return run_tune(*o); }};
}

}  // namespace moekit_cli
