// moekit_cuda_bench: times the CUDA backends on the solar-open-100b expert shape (H=4096 I=1280
// E=128 K=8, bf16) against the floor of DESIGN §3, measured on the spot:
//   floor = max(hit experts' weight bytes / D2D copy bandwidth (read + write),
//               FLOPs / cuBLAS bf16 8192^3 GEMM rate)
// CUDA-graph replays (batched_mm, grouped_mm) or direct calls (eager), CUDA-event timed, median.
// Also checks two tokens of each grouped_mm output against a float64 host computation.
//
//   moekit_cuda_bench [--tokens 1,16,64] [--backends grouped_mm,batched_mm,eager] [--reps 20]
//                     [--tile-sweep] [--wgmma-variants 0,1] [--batched-max-tokens 512] [--csv FILE]
//   --wgmma-variants: also time grouped_mm with MOEKIT_CUDA_WGMMA=V for each V (0: the mma.sync
//   kernel for BM = 128; 1..4: the wgmma variants of gemm_wgmma.cuh)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "moekit/backend.hpp"
#include "moekit/inputs.hpp"

namespace {

using namespace moekit;

void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "moekit_cuda_bench: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

constexpr std::int64_t H = 4096, I = 1280, E = 128, K = 8, R = 2 * I;

struct DeviceBuf {
  void* p = nullptr;
  explicit DeviceBuf(std::size_t bytes) { ok(cudaMalloc(&p, std::max<std::size_t>(bytes, 1)), "cudaMalloc"); }
  ~DeviceBuf() { cudaFree(p); }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
};

template <class F>
std::vector<double> time_events(int reps, cudaStream_t s, F&& f) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<double> out;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a, s);
    f();
    cudaEventRecord(b, s);
    ok(cudaEventSynchronize(b), "timed run");
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    out.push_back(ms * 1e-3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return out;
}

double copy_bandwidth(cudaStream_t s) {
  const std::size_t bytes = std::size_t(2) << 30;
  DeviceBuf a(bytes), b(bytes);
  ok(cudaMemsetAsync(a.p, 1, bytes, s), "memset");
  auto t = time_events(10, s, [&] { cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, s); });
  return 2.0 * double(bytes) / median(t);
}

double gemm_rate(const void* A, const void* B, cudaStream_t s) {
  const int n = 8192;
  DeviceBuf C(std::size_t(n) * n * 2);
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return 0;
  cublasSetStream(h, s);
  const float alpha = 1, beta = 0;
  auto run = [&] {
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, A, CUDA_R_16BF, n, B, CUDA_R_16BF, n, &beta, C.p,
                 CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  for (int i = 0; i < 3; ++i) run();
  auto t = time_events(10, s, run);
  cublasDestroy(h);
  return 2.0 * double(n) * n * n / median(t);
}

float bf(std::uint16_t v) { return to_float(bf16{v}); }

// float64 output of token t from the host copies of its experts' weights.
std::vector<double> reference_token(const std::vector<std::uint16_t>& x, const std::vector<std::int32_t>& ids,
                                    const std::vector<float>& w, std::int64_t t, const void* gu_dev,
                                    const void* dn_dev) {
  std::vector<double> out(H, 0.0);
  std::vector<std::uint16_t> gu(std::size_t(R * H)), dn(std::size_t(H * I));
  std::vector<double> a(I);
  for (std::int64_t k = 0; k < K; ++k) {
    const std::int64_t e = ids[std::size_t(t * K + k)];
    if (e < 0 || e >= E) continue;
    ok(cudaMemcpy(gu.data(), static_cast<const std::uint16_t*>(gu_dev) + e * R * H, gu.size() * 2,
                  cudaMemcpyDeviceToHost), "download gate_up");
    ok(cudaMemcpy(dn.data(), static_cast<const std::uint16_t*>(dn_dev) + e * H * I, dn.size() * 2,
                  cudaMemcpyDeviceToHost), "download down");
    for (std::int64_t i = 0; i < I; ++i) {
      double g = 0, u = 0;
      for (std::int64_t h = 0; h < H; ++h) {
        const double xv = bf(x[std::size_t(t * H + h)]);
        g += double(bf(gu[std::size_t(i * H + h)])) * xv;
        u += double(bf(gu[std::size_t((I + i) * H + h)])) * xv;
      }
      a[std::size_t(i)] = g / (1.0 + std::exp(-g)) * u;
    }
    for (std::int64_t j = 0; j < H; ++j) {
      double s = 0;
      for (std::int64_t i = 0; i < I; ++i) s += double(bf(dn[std::size_t(j * I + i)])) * a[std::size_t(i)];
      out[std::size_t(j)] += double(w[std::size_t(t * K + k)]) * s;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> tokens{1, 16, 64, 128, 512, 2048, 8192};
  std::vector<std::string> backends{"grouped_mm", "batched_mm", "eager"};
  int reps = 20;
  bool sweep = false;
  std::vector<std::string> wgmma_variants;
  std::int64_t batched_max = 512;
  std::string csv;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "moekit_cuda_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--tokens") {
      tokens.clear();
      for (auto& s : split(next())) tokens.push_back(std::stoll(s));
    } else if (a == "--backends") backends = split(next());
    else if (a == "--reps") reps = std::stoi(next());
    else if (a == "--tile-sweep") sweep = true;
    else if (a == "--wgmma-variants") wgmma_variants = split(next());
    else if (a == "--batched-max-tokens") batched_max = std::stoll(next());
    else if (a == "--csv") csv = next();
    else {
      std::fprintf(stderr, "moekit_cuda_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  for (const auto& name : backends)
    if (Support s = default_registry().get(name, DeviceType::cuda).available(); !s.ok) {
      std::fprintf(stderr, "moekit_cuda_bench: %s\n", s.reason.c_str());
      return 1;
    }
  cudaDeviceProp prop{};
  ok(cudaGetDeviceProperties(&prop, 0), "properties");
  cudaStream_t stream;
  ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");

  // Random weights, one expert at a time through a host buffer: U(-1,1)/sqrt(fan_in), never zeros.
  DeviceBuf gu(std::size_t(E * R * H) * 2), dn(std::size_t(E * H * I) * 2);
  {
    Tensor host_gu(DType::bf16, {R, H}), host_dn(DType::bf16, {H, I});
    for (std::int64_t e = 0; e < E; ++e) {
      fill_uniform(host_gu.view(), 1.0f / std::sqrt(float(H)), 1000 + std::uint64_t(e), 16);
      fill_uniform(host_dn.view(), 1.0f / std::sqrt(float(I)), 5000 + std::uint64_t(e), 16);
      ok(cudaMemcpy(static_cast<char*>(gu.p) + e * R * H * 2, host_gu.data<void>(), host_gu.nbytes(),
                    cudaMemcpyHostToDevice), "upload gate_up");
      ok(cudaMemcpy(static_cast<char*>(dn.p) + e * H * I * 2, host_dn.data<void>(), host_dn.nbytes(),
                    cudaMemcpyHostToDevice), "upload down");
    }
  }
  const double bw = copy_bandwidth(stream);
  const double rate = gemm_rate(gu.p, dn.p, stream);
  std::printf("device: %s, %d SMs, %.1f MB L2\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1e6);
  std::printf("ceilings: D2D copy %.3f TB/s (read+write), cuBLAS bf16 8192^3 %.1f TFLOP/s\n", bw / 1e12, rate / 1e12);

  struct Row {
    std::int64_t T;
    std::string backend;
    double ms, floor_ms, err;
  };
  std::vector<Row> rows;
  for (std::int64_t T : tokens) {
    Tensor x(DType::bf16, {T, H}), ids(DType::i32, {T, K}), w(DType::f32, {T, K});
    fill_uniform(x.view(), 1.0f, 77 + std::uint64_t(T), 16);
    fill_routing(ids.view(), w.view(), E, RoutingPattern::random, 99 + std::uint64_t(T));
    DeviceBuf dx(x.nbytes()), dids(ids.nbytes()), dw(w.nbytes()), dout(std::size_t(T * H) * 2);
    ok(cudaMemcpy(dx.p, x.data<void>(), x.nbytes(), cudaMemcpyHostToDevice), "upload x");
    ok(cudaMemcpy(dids.p, ids.data<void>(), ids.nbytes(), cudaMemcpyHostToDevice), "upload ids");
    ok(cudaMemcpy(dw.p, w.data<void>(), w.nbytes(), cudaMemcpyHostToDevice), "upload w");
    const Device cuda0{DeviceType::cuda, 0};
    ExpertsCall call;
    call.hidden_states = TensorView::contiguous(dx.p, DType::bf16, {T, H}, cuda0);
    call.top_k_index = TensorView::contiguous(dids.p, DType::i32, {T, K}, cuda0);
    call.top_k_weights = TensorView::contiguous(dw.p, DType::f32, {T, K}, cuda0);
    call.gate_up_proj = TensorView::contiguous(gu.p, DType::bf16, {E, R, H}, cuda0);
    call.down_proj = TensorView::contiguous(dn.p, DType::bf16, {E, H, I}, cuda0);
    call.output = TensorView::contiguous(dout.p, DType::bf16, {T, H}, cuda0);
    const ExpertsProblem problem = validate(call);
    ExpertsCall host_ids = call;
    host_ids.top_k_index = ids.view();
    const double floor_s = std::max(double(hit_weight_bytes(host_ids, problem)) / bw,
                                    call_flops(host_ids, problem) / rate);

    std::vector<std::pair<std::string, std::string>> runs;  // (backend, tile override)
    for (const auto& b : backends) {
      if (b == "batched_mm" && T > batched_max) continue;
      runs.push_back({b, ""});
      if (sweep && b == "grouped_mm")
        for (const char* bm : {"16", "32", "64", "128"}) runs.push_back({b, bm});
      if (b == "grouped_mm")
        for (const auto& v : wgmma_variants) runs.push_back({b, "wgmma=" + v});
    }
    std::vector<std::uint16_t> reference_out;
    for (const auto& [name, bm] : runs) {
      unsetenv("MOEKIT_CUDA_WGMMA");
      if (bm.empty()) unsetenv("MOEKIT_CUDA_TILE_M");
      else if (bm.rfind("wgmma=", 0) == 0) {
        unsetenv("MOEKIT_CUDA_TILE_M");
        setenv("MOEKIT_CUDA_WGMMA", bm.substr(6).c_str(), 1);
      } else setenv("MOEKIT_CUDA_TILE_M", bm.c_str(), 1);
      const Backend& b = default_registry().get(name, DeviceType::cuda);
      const std::size_t ws_bytes = b.workspace_bytes(problem);
      DeviceBuf ws(ws_bytes);
      const Workspace workspace{ws.p, ws_bytes};
      const RunContext ctx{0, stream};
      ok(cudaMemsetAsync(dout.p, 0xff, std::size_t(T * H) * 2, stream), "poison");
      std::vector<double> t;
      try {
        if (name == "eager") {
          for (int i = 0; i < 2; ++i) b.run(call, problem, workspace, ctx);
          t = time_events(reps, stream, [&] { b.run(call, problem, workspace, ctx); });
        } else {
          cudaGraph_t graph;
          cudaGraphExec_t exec;
          ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
          b.run(call, problem, workspace, ctx);
          ok(cudaStreamEndCapture(stream, &graph), "end capture");
          ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
          for (int i = 0; i < 3; ++i) ok(cudaGraphLaunch(exec, stream), "warm-up");
          t = time_events(reps, stream, [&] { cudaGraphLaunch(exec, stream); });
          cudaGraphExecDestroy(exec);
          cudaGraphDestroy(graph);
        }
      } catch (const std::exception& e) {
        std::printf("T=%lld %s: FAILED: %s\n", (long long)T, name.c_str(), e.what());
        rows.push_back({T, name, -1, floor_s * 1e3, -1});
        continue;
      }
      ok(cudaStreamSynchronize(stream), "sync");
      std::vector<std::uint16_t> out(std::size_t(T * H));
      ok(cudaMemcpy(out.data(), dout.p, out.size() * 2, cudaMemcpyDeviceToHost), "download");
      // Two tokens against float64 (first and last), every element.
      double err = 0, mref = 0;
      for (std::int64_t tok : {std::int64_t(0), T - 1}) {
        static std::map<std::int64_t, std::vector<double>> cache;
        const std::int64_t key = T * 1000003 + tok;
        if (!cache.count(key))
          cache[key] = reference_token(std::vector<std::uint16_t>(x.data<std::uint16_t>(), x.data<std::uint16_t>() + x.numel()),
                                       std::vector<std::int32_t>(ids.data<std::int32_t>(), ids.data<std::int32_t>() + ids.numel()),
                                       std::vector<float>(w.data<float>(), w.data<float>() + w.numel()), tok, gu.p, dn.p);
        const auto& ref = cache[key];
        for (std::int64_t j = 0; j < H; ++j) {
          const double o = bf(out[std::size_t(tok * H + j)]);
          err = std::isfinite(o) ? std::max(err, std::abs(o - ref[std::size_t(j)])) : INFINITY;
          mref = std::max(mref, std::abs(ref[std::size_t(j)]));
        }
      }
      const double rel = err / std::max(mref, 1e-30);
      const std::string label = bm.empty() ? name : bm.rfind("wgmma=", 0) == 0 ? name + "[" + bm + "]" : name + "[bm=" + bm + "]";
      rows.push_back({T, label, median(t) * 1e3, floor_s * 1e3, rel});
      std::printf("T=%-5lld %-20s median %8.3f ms  floor %7.3f ms  x%5.2f  rel.err %.2e\n", (long long)T,
                  label.c_str(), median(t) * 1e3, floor_s * 1e3, median(t) / floor_s, rel);
      std::fflush(stdout);
    }
    unsetenv("MOEKIT_CUDA_TILE_M");
    unsetenv("MOEKIT_CUDA_WGMMA");
  }
  std::printf("\n| T | backend | median ms | floor ms | x floor | rel err (2 tokens vs f64) |\n|---|---|---|---|---|---|\n");
  for (const auto& r : rows)
    std::printf("| %lld | %s | %.3f | %.3f | %.2f | %.1e |\n", (long long)r.T, r.backend.c_str(), r.ms, r.floor_ms,
                r.ms / r.floor_ms, r.err);
  if (!csv.empty()) {
    std::ofstream f(csv);
    f << "T,backend,median_ms,floor_ms,copy_TBps,gemm_TFLOPs,rel_err\n";
    for (const auto& r : rows)
      f << r.T << "," << r.backend << "," << r.ms << "," << r.floor_ms << "," << bw / 1e12 << "," << rate / 1e12
        << "," << r.err << "\n";
  }
  return 0;
}
