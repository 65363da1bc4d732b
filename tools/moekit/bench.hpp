// moekit CLI: the pieces of `moekit bench`: what to run (plan), the data it runs on, the timed
// runs, and the report.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ceilings.hpp"
#include "moekit/backend.hpp"
#include "moekit/model.hpp"
#include "moekit/presets.hpp"
#include "moekit/router.hpp"
#include "moekit/tensor.hpp"

namespace moekit_cli {

// The layer being measured: a preset's expert part, or sizes from the command line.
struct BenchShape {
  std::string name;   // preset name, or "custom"
  std::string model;  // for display
  std::int64_t hidden = 0, intermediate = 0, experts = 0, top_k = 0;
  moekit::RouterConfig router;
  moekit::ExpertsOptions options;
  bool bias = false;
  moekit::DType dtype = moekit::DType::bf16;
  std::string overrides;  // preset dims replaced from the command line: "--experts 16"
  std::string shared;     // the shared expert, described; part of the block, not of the experts call
  // The whole block: the preset's model description (or the checkpoint's) with these dims.
  moekit::ModelConfig config;
  std::string model_dir;  // --model: the checkpoint the blocks are read from; empty: random blocks
  int first_layer = -1;   // --layer: the first MoE layer of the checkpoint benchmarked

  std::int64_t gate_up_rows() const noexcept { return options.has_gate ? 2 * intermediate : intermediate; }
  std::string dims() const;  // "H=4096 I=1280 E=128 K=8 bf16"
};

// The experts call of a preset (name, sizes, router, layout); dtype and the block fields untouched.
BenchShape experts_shape_of(const moekit::Preset& preset);
// H, I, E, K, router, layout and bias from a model description.
void take_expert_dims(BenchShape& shape, const moekit::ModelConfig& config);

// CUDA graphs: off times each call as issued on the stream; on captures one call per (backend, T)
// and times replays of it; both gives a row of each.
enum class GraphMode { off, on, both };

// What one timed call covers: the experts call alone, or the whole MoE block (router, experts,
// shared experts), each for every layer of the stack.
enum class Scope { experts, block };
const char* scope_name(Scope scope);

// One token count: batch x seq, or a T given alone with --tokens (batch = 0).
struct BenchPoint {
  std::int64_t batch = 0, seq = 0, tokens = 0;
};

struct BenchPlan {
  BenchShape shape;
  moekit::DeviceType device = moekit::DeviceType::cpu;
  GraphMode graph = GraphMode::off;
  std::vector<const moekit::Backend*> backends;
  std::vector<BenchPoint> points;
  std::vector<std::int64_t> tokens;  // the points' T, in order
  int layers = 1;                    // independent blocks in a row, each with its own weights
  std::vector<Scope> scopes{Scope::experts};
  int warmup = 2;
  int repeat = 10;
  int threads = 0;  // 0 = all hardware threads
  std::uint64_t seed = 0;
  bool quiet = false;
  std::string json_path, csv_path;
  std::string command_line;  // as typed, for the report
};

// Byte counts of the plan; every product is overflow-checked when the plan is made.
std::uint64_t weight_bytes(const BenchShape& shape);                      // weights and biases
std::uint64_t activation_bytes(const BenchShape& shape, std::int64_t T);  // x, out, logits, routing
// What validate() will derive from the call the bench builds, before any tensor exists.
moekit::ExpertsProblem planned_problem(const BenchShape& shape, std::int64_t T, moekit::DeviceType device);
// Usage error when the sizes cannot even be counted in 64-bit bytes.
void check_sizes(const BenchShape& shape, const std::vector<std::int64_t>& tokens);
// Usage error (exit 2) when the run would not fit in MemAvailable (and, on CUDA, in the device's
// free memory), naming what does not fit.
void check_memory(const BenchPlan& plan);
// The CUDA part of check_memory: weights, inputs, workspace and the ceilings' buffers against
// cudaMemGetInfo's free memory.
void check_device_memory(const BenchPlan& plan);
// The graph settings of a plan in row order: {false}, {true} or {false, true}.
std::vector<bool> graph_settings(GraphMode mode);

// One (backend, T) measurement.
struct BenchRow {
  std::string backend;
  Scope scope = Scope::experts;
  std::int64_t batch = 0, seq = 0;  // batch 0: T given with --tokens
  std::int64_t tokens = 0;
  bool graph = false;  // timed as replays of a captured CUDA graph
  // not_capturable: the backend cannot be captured in a CUDA graph (eager syncs with the host).
  enum class Status { ok, skipped, failed, not_capturable } status = Status::ok;
  std::string detail;  // why skipped, failed or not capturable; or a warning on an ok row
  std::int64_t experts_hit = 0;  // summed over the layers of the stack
  std::uint64_t hit_bytes = 0;   // block rows: also the router and shared weights
  double flops = 0;
  std::vector<double> times_s;  // each timed call
  double median_s = 0, p90_s = 0, min_s = 0;
  double floor_s = 0;
  std::uint64_t workspace_bytes = 0;
  std::optional<std::uint64_t> peak_rss, rss_before;
  // CUDA: device memory in use (cudaMemGetInfo total - free, device-wide) just before the backend's
  // first call (or its capture), right after the warm-up, at the end, and the highest seen after
  // any call; see bench_cuda_run.cpp.
  std::optional<std::uint64_t> dev_before, dev_after_warmup, dev_after, dev_peak;
};

struct GpuDescription {
  std::string name;  // "NVIDIA H100 80GB HBM3"
  int index = 0, major = 0, minor = 0, sms = 0;
  std::uint64_t memory_bytes = 0, l2_bytes = 0;
  int driver_version = 0, runtime_version = 0;  // 13000 = 13.0
};

struct DeviceDescription {
  std::string type;  // "cpu" or "cuda"
  std::string text;  // "AMD EPYC (avx512 kernels), 2 threads"
  std::string cpu_model, isa;
  int threads = 0;
  std::optional<GpuDescription> gpu;  // on cuda
};
DeviceDescription describe_device(moekit::DeviceType device, int threads);
// cuda:0 as the CUDA runtime sees it; throws moekit::Error when it cannot be queried.
GpuDescription describe_gpu();
std::string gpu_text(const GpuDescription& gpu);  // "cuda:0 NVIDIA H100 ...; sm_90, 132 SMs, ..."

// Runs the whole plan; rows in (T, backend) order. Prints progress to stderr unless quiet.
std::vector<BenchRow> run_bench(const BenchPlan& plan, const Ceilings& ceilings);
// The same on cuda:0, with device-resident data; rows in (T, backend, graph) order.
std::vector<BenchRow> run_bench_cuda(const BenchPlan& plan, const Ceilings& ceilings);

void print_bench_header(const BenchPlan& plan, const DeviceDescription& device);
void print_ceilings(const Ceilings& ceilings);
void print_bench_table(const BenchPlan& plan, const std::vector<BenchRow>& rows, bool peak_rss_reset);
void write_bench_json(std::ostream& out, const BenchPlan& plan, const DeviceDescription& device,
                      const Ceilings& ceilings, const std::vector<BenchRow>& rows);
void write_bench_csv(std::ostream& out, const BenchPlan& plan, const DeviceDescription& device,
                     const Ceilings& ceilings, const std::vector<BenchRow>& rows);
// The rows as a report document (report.hpp: results.json's schema).
nlohmann::json bench_report_document(const BenchPlan& plan, const DeviceDescription& device,
                                     const Ceilings& ceilings, const std::vector<BenchRow>& rows);

}  // namespace moekit_cli
