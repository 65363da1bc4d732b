// The timed part of `moekit bench --device cuda`: the layer on cuda:0, then for each T fresh
// inputs (routed on the host, as on the CPU) and, for each backend, a workspace cudaMalloc'd
// outside the timing, and per graph setting warm-up calls and timed calls.
//
// Timing: each call alone, between two CUDA events on the bench's non-blocking stream, then a
// sync; so a time includes the host's launch work whenever the GPU would wait for it (what graphs
// save). With a graph, one call is captured per (backend, T) and its replays are timed the same way.
//
// Device memory: cudaMemGetInfo (total - free, device-wide) just before the backend's first call
// (or its capture): the baseline, with the weights, inputs, output and workspace the bench
// allocated already in it; then after every warm-up and timed call or replay. dev_peak is the
// highest of those samples; dev_peak - baseline is what the backend (its kernels' lazy loading,
// graph instantiation, a library's own workspace, any cudaMalloc of its own) added on top. A
// transient allocation freed within one call is invisible to sampling between calls.
#if MOEKIT_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>

#include "bench.hpp"
#include "bench_block.hpp"
#include "bench_cuda_data.hpp"
#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/tune.hpp"
#include "stats.hpp"
#include "table.hpp"

namespace moekit_cli {
namespace {

using Launch = std::function<void()>;

class GraphExec {
 public:
  GraphExec() = default;
  explicit GraphExec(cudaGraphExec_t exec) : exec_(exec) {}
  ~GraphExec() {
    if (exec_) cudaGraphExecDestroy(exec_);
  }
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  cudaGraphExec_t get() const noexcept { return exec_; }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

// Captures one call. A backend that cannot be captured either says so by throwing (eager checks
// cudaStreamIsCapturing) or breaks the capture with a forbidden call (a sync, a cudaMalloc under
// the thread-local capture mode); either way the capture is ended, the error cleared so that it
// does not surface at a later call, and the reason returned in `why_not`.
std::unique_ptr<GraphExec> capture(const Launch& call, const cu::Stream& stream, std::string& why_not) {
  cu::check(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  try {
    call();
  } catch (const std::exception& e) {
    why_not = e.what();
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream.get(), &graph);
  if (why_not.empty() && ended != cudaSuccess) why_not = "cudaStreamEndCapture: " + cu::error_text(ended);
  if (!why_not.empty()) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    return nullptr;
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  cu::check(instantiated, "cudaGraphInstantiate");
  return std::make_unique<GraphExec>(exec);
}

// Warm-up and timed calls with the device memory sampled after each; row.dev_before is set.
void time_calls(const BenchPlan& plan, const Launch& launch, const cu::Stream& stream, const cu::Event& start,
                const cu::Event& stop, BenchRow& row) {
  std::uint64_t peak = *row.dev_before;
  auto sample = [&] {
    const std::uint64_t used = cu::mem_info().used();
    peak = std::max(peak, used);
    return used;
  };
  for (int i = 0; i < plan.warmup; ++i) {
    launch();
    stream.synchronize("a warm-up call");
    sample();
  }
  row.dev_after_warmup = sample();
  row.times_s.reserve(std::size_t(plan.repeat));
  for (int i = 0; i < plan.repeat; ++i) {
    start.record(stream);
    launch();
    stop.record(stream);
    row.times_s.push_back(cu::elapsed_s(start, stop));
    sample();
  }
  row.dev_after = sample();
  row.dev_peak = peak;
}

// The output was poisoned with NaN before the calls: a backend that left part of it unwritten (or
// produced non-finite values) is timing less work than it should.
bool output_finite(const BenchShape& s, const cu::DeviceBuffer& output, std::int64_t T) {
  moekit::Tensor host(s.dtype, {T, s.hidden});
  cu::download(host.data<void>(), output.get(), host.nbytes(), "the output");
  for (std::int64_t i = 0; i < host.numel(); ++i)
    if (!std::isfinite(moekit::element_as_double(host, i))) return false;
  return true;
}

// `direct` issues the whole stack once on the stream; `output` is the last layer's output.
void measure(const BenchPlan& plan, const Launch& direct, const cu::DeviceBuffer& output, const cu::Stream& stream,
             const cu::Event& start, const cu::Event& stop, BenchRow& row) {
  try {
    cu::check(cudaMemsetAsync(output.get(), 0xFF, output.bytes(), stream.get()), "poisoning the output");
    stream.synchronize("poisoning the output");
    row.dev_before = cu::mem_info().used();
    if (row.graph) {
      std::string why_not;
      const std::unique_ptr<GraphExec> graph = capture(direct, stream, why_not);
      if (!graph) {
        row.status = BenchRow::Status::not_capturable;
        row.detail = "cannot capture: " + why_not;
        row.dev_before.reset();
        return;
      }
      const Launch replay = [&] { cu::check(cudaGraphLaunch(graph->get(), stream.get()), "cudaGraphLaunch"); };
      time_calls(plan, replay, stream, start, stop, row);
    } else {
      time_calls(plan, direct, stream, start, stop, row);
    }
    if (!output_finite(plan.shape, output, row.tokens)) {
      row.status = BenchRow::Status::failed;
      row.detail = "the output holds NaN or Inf after the calls (it was poisoned with NaN before them)";
      return;
    }
  } catch (const std::exception& e) {
    row.status = BenchRow::Status::failed;
    row.detail = e.what();
    // Let queued work drain and clear a non-sticky error, so the next row starts clean.
    cudaStreamSynchronize(stream.get());
    cudaGetLastError();
    return;
  }
  row.median_s = median(row.times_s);
  row.p90_s = p90(row.times_s);
  row.min_s = *std::min_element(row.times_s.begin(), row.times_s.end());
  // What the issue asks of every backend: no allocation once warm.
  if (*row.dev_after > *row.dev_after_warmup)
    row.detail = "device memory grew by " + bytes_iec(*row.dev_after - *row.dev_after_warmup) +
                 " during the timed calls";
}

}  // namespace

std::vector<BenchRow> run_bench_cuda(const BenchPlan& plan, const Ceilings& ceilings) {
  auto note = [&](const auto&... parts) {
    if (!plan.quiet) (std::cerr << ... << parts) << std::flush;
  };
  const BenchShape& shape = plan.shape;
  const cu::Stream stream;
  const cu::Event start, stop;
  std::vector<DeviceWeights> weights;
  for (int l = 0; l < plan.layers; ++l) {
    if (shape.model_dir.empty()) {
      note("building random weights on cuda:0 (", bytes_iec(weight_bytes(shape)), ")", plan.layers > 1 ? " for layer " : "",
           plan.layers > 1 ? std::to_string(l) : "", " ...\n");
      weights.push_back(upload_weights(shape, plan.seed + 1000003u * std::uint64_t(l), plan.threads));
    } else {
      note("loading layer ", l, " of the stack from ", shape.model_dir, " and copying it to cuda:0 ...\n");
      weights.push_back(upload_weights(make_block(plan, l).weights()));
    }
  }
  const std::size_t L = weights.size();
  // The "block" scope: each layer's MoeBlock on cuda:0 (its own copy of the weights, its router and
  // shared MLP on the device), fed the same device activations as the experts scope.
  std::vector<moekit::MoeBlock> blocks;
  if (std::find(plan.scopes.begin(), plan.scopes.end(), Scope::block) != plan.scopes.end())
    for (int l = 0; l < plan.layers; ++l) {
      note("building block ", l, " and moving it to cuda:0 ...\n");
      blocks.push_back(make_block(plan, l));
      blocks.back().to(moekit::Device{moekit::DeviceType::cuda, 0});
    }

  const std::vector<bool> graphs = graph_settings(plan.graph);
  std::vector<BenchRow> rows;
  const std::size_t total = plan.points.size() * plan.scopes.size() * plan.backends.size() * graphs.size();
  for (const BenchPoint& point : plan.points) {
    const std::int64_t T = point.tokens;
    // Per layer: its routing (routed on the host, as on the cpu) and its output; layer l reads the
    // output of layer l - 1.
    std::vector<BenchInputs> host;
    std::vector<DeviceInputs> inputs;
    std::vector<moekit::ExpertsCall> calls;
    std::uint64_t hit = 0;
    double flops = 0;
    std::int64_t experts_hit = 0;
    for (std::size_t l = 0; l < L; ++l) {
      host.push_back(make_inputs(shape, T, plan.seed + 1000003u * l, plan.threads));
      inputs.push_back(upload_inputs(host.back()));
      calls.push_back(make_device_call(shape, weights[l], inputs.back(), T));
      if (l > 0) calls.back().hidden_states = calls[l - 1].output;
      // The floor's numerators come from the routing the host computed (the same values).
      moekit::ExpertsCall counted = calls.back();
      counted.top_k_index = host.back().top_k_index;
      const moekit::ExpertsProblem p = moekit::validate(calls.back());
      hit += moekit::hit_weight_bytes(counted, p);
      flops += moekit::call_flops(counted, p);
      experts_hit += host.back().experts_hit;
    }
    const moekit::ExpertsProblem problem = moekit::validate(calls[0]);
    const double floor_s = std::max(double(hit) / ceilings.copy.bytes_per_s, flops / ceilings.gemm.flops_per_s);
    const cu::DeviceBuffer& output = inputs.back().output;
    const moekit::RunContext context{plan.threads, stream.get()};
    const auto forward_blocks = [&](std::string_view backend) {
      for (std::size_t l = 0; l < L; ++l) blocks[l].forward(calls[l].hidden_states, calls[l].output, backend, context);
    };
    for (Scope scope : plan.scopes) {
      // The block routes itself: one untimed pass gives the routing its floor counts (router, hit
      // experts, shared MLP of every layer).
      BlockWork block{};
      std::string block_error;
      if (scope == Scope::block) {
        for (const moekit::Backend* b : plan.backends)
          if (b->supports(problem).ok) {
            try {
              forward_blocks(b->name());
              stream.synchronize("the block's routing pass");
              for (std::size_t l = 0; l < L; ++l) {
                const BlockWork w = block_work(blocks[l], calls[l].hidden_states, calls[l].output);
                block.bytes += w.bytes;
                block.flops += w.flops;
                block.experts_hit += w.experts_hit;
              }
            } catch (const std::exception& e) {
              block_error = e.what();
            }
            break;
          }
      }
      for (const moekit::Backend* backend : plan.backends) {
        const moekit::Support support = backend->supports(problem);
        cu::DeviceBuffer scratch;
        std::string no_workspace;
        std::uint64_t workspace_bytes = 0;
        if (support.ok && scope == Scope::experts) {
          workspace_bytes = backend->workspace_bytes(problem);
          try {
            scratch = cu::DeviceBuffer(workspace_bytes, std::string(backend->name()) + "'s workspace");
          } catch (const moekit::Error& e) {
            no_workspace = e.what();
          }
        }
        // One workspace serves every layer: the calls run one after the other on one stream.
        const moekit::Workspace workspace{scratch.get(), scratch.bytes()};
        const Launch direct = scope == Scope::block ? Launch([&] { forward_blocks(backend->name()); }) : Launch([&] {
          for (const moekit::ExpertsCall& call : calls) moekit::experts(call, backend->name(), context, workspace);
        });
        if (scope == Scope::block && support.ok && block_error.empty()) {
          // A block grows its scratch (this backend's workspace among it) on a first call, which a
          // capture may not do: one call outside the timing and any capture first.
          try {
            direct();
            stream.synchronize("the block's first call");
          } catch (const std::exception& e) {
            block_error = e.what();
          }
        }
        for (bool graph : graphs) {
          BenchRow row;
          row.backend = std::string(backend->name());
          row.scope = scope;
          row.batch = point.batch;
          row.seq = point.seq;
          row.tokens = T;
          row.graph = graph;
          row.experts_hit = scope == Scope::block ? block.experts_hit : experts_hit;
          row.hit_bytes = scope == Scope::block ? block.bytes : hit;
          row.flops = scope == Scope::block ? block.flops : flops;
          row.floor_s = scope == Scope::block ? std::max(double(block.bytes) / ceilings.copy.bytes_per_s,
                                                         block.flops / ceilings.gemm.flops_per_s)
                                              : floor_s;
          row.workspace_bytes = workspace_bytes;
          note("[", rows.size() + 1, "/", total, "] ", row.backend, " ", scope_name(scope), " T=", T,
               graph ? " graph" : "", " ... ");
          if (!support.ok) {
            row.status = BenchRow::Status::skipped;
            row.detail = support.reason;
          } else if (scope == Scope::block && !block_error.empty()) {
            row.status = BenchRow::Status::failed;
            row.detail = block_error;
          } else if (!no_workspace.empty()) {
            row.status = BenchRow::Status::failed;
            row.detail = no_workspace;
          } else {
            measure(plan, direct, output, stream, start, stop, row);
            if (row.backend == "auto" && row.detail.empty() && scope == Scope::experts) {  // what auto ran
              const moekit::AutoChoice c = moekit::auto_choice(calls[0]);
              row.detail = "ran " + c.candidate.label() + " (" + c.why + ")";
            }
          }
          switch (row.status) {
            case BenchRow::Status::ok: note(fixed(row.median_s * 1e3, 3), " ms\n"); break;
            case BenchRow::Status::skipped: note("skipped\n"); break;
            case BenchRow::Status::failed: note("FAILED\n"); break;
            case BenchRow::Status::not_capturable: note("cannot be captured\n"); break;
          }
          rows.push_back(std::move(row));
        }
      }
    }
  }
  return rows;
}

}  // namespace moekit_cli

#endif  // MOEKIT_HAVE_CUDA
