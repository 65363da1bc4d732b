// The wgmma kernels of the grouped pipeline (sm_90a) against each other and the reference: the
// persistent warp-specialised variants must give bitwise the output of the variant with the same
// instruction and k order (4: variant 3's m64n128k16; 5 and 6, the TMA kernels: variant 1's
// m64n256k16; only the schedule, the loads and for 5 and 6 the order of the gate/up columns
// differ), match the float64 reference, and be bitwise stable run to run. The routing is built so
// that the tile list has empty experts (first and last included), tails of 1, 63, 64, 65 and 127
// rows (second 64-row half skipped or not), and enough tiles that every CTA of the persistent
// grid takes several work items. Skipped off compute capability 9.0 (no wgmma kernel there).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <numeric>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "cuda/cuda_test_util.hpp"
#include "moekit/check.hpp"
#include "moekit/reference.hpp"

namespace moekit {
namespace {

bool is_sm90() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return major == 9 && minor == 0;
}

// Sets an environment variable for the scope, restoring the previous value (or its absence).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Pairs per expert (0: not hit). Runs of one expert fill consecutive pair slots i -> token i % T,
// k = i / T, so a token never gets the same expert twice (every count is <= T).
std::vector<std::int64_t> expert_counts(std::int64_t T, std::int64_t K, std::int64_t E) {
  const std::vector<std::int64_t> fixed = {1, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 383, 17, 100};
  std::vector<std::int64_t> c(std::size_t(E), 0);
  std::size_t next = 0;
  std::int64_t left = T * K;
  std::vector<std::int64_t> open;  // experts that take the remainder
  for (std::int64_t e = 0; e < E; ++e) {
    if (e == 0 || e == E - 1 || e % 5 == 0) continue;  // empty experts, the first and last included
    if (next < fixed.size()) {
      c[std::size_t(e)] = fixed[next++];
      left -= c[std::size_t(e)];
    } else {
      open.push_back(e);
    }
  }
  for (std::size_t i = 0; i < open.size(); ++i) {
    const std::int64_t share = left / std::int64_t(open.size() - i);
    c[std::size_t(open[i])] = share;
    left -= share;
  }
  return c;
}

void fill_ids(ExpertsInputs& in, const std::vector<std::int64_t>& counts) {
  const std::int64_t T = in.top_k_index.view().size(0), K = in.top_k_index.view().size(1);
  auto* ids = in.top_k_index.data<std::int32_t>();
  std::int64_t i = 0;
  for (std::size_t e = 0; e < counts.size(); ++e)
    for (std::int64_t j = 0; j < counts[e]; ++j, ++i) ids[(i % T) * K + i / T] = std::int32_t(e);
}

struct Variant {
  std::string name;
  DType dtype;
  ExpertsOptions options;
  bool bias;
};
void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }
class CudaWgmmaPersistent : public ::testing::TestWithParam<Variant> {};

// Shape 0: H = 264: 5 k-tiles in GEMM1, the last 8 wide, and 2 weight slices in GEMM2, the last 8
// rows; I = 200: 2 gate slices of 128 for the TMA kernels (the last 72), 4 k-tiles in GEMM2 (the
// last 8 wide); an even item count. Shape 1: an odd count of tiles (131) and of weight slices (3
// in both GEMMs), so variant 6's last pair has one item; GEMM2's last slice has 8 rows, so its
// second TMA box lies wholly past the weights. H and I are multiples of 8, or the pipeline would
// take the fp32 FMA kernel and no wgmma variant would run.
struct Shape {
  std::int64_t T, H, I;
  std::int64_t min_tiles;
};
constexpr Shape kShapes[] = {{2048, 264, 200, 146}, {1900, 520, 296, 131}};

TEST_P(CudaWgmmaPersistent, MatchesVariant3AndReferenceBitwiseStable) {
  MOEKIT_SKIP_WITHOUT_GPU();
  if (!is_sm90()) GTEST_SKIP() << "the wgmma kernels run on compute capability 9.0 only";
  const Variant& v = GetParam();
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE("T = " + std::to_string(shape.T) + ", H = " + std::to_string(shape.H));
    ASSERT_TRUE(shape.H % 8 == 0 && shape.I % 8 == 0) << "a shape the tensor-core path takes";
    InputSpec s;
    s.dims = {shape.T, shape.H, shape.I, 40, 8};
    s.dtype = v.dtype;
    s.options = v.options;
    s.bias = v.bias;
    ExpertsInputs in = make_random_inputs(s, 21);
    const auto counts = expert_counts(shape.T, 8, 40);
    ASSERT_EQ(std::accumulate(counts.begin(), counts.end(), std::int64_t(0)), shape.T * 8);
    std::int64_t tiles = 0;
    for (std::int64_t c : counts) {
      ASSERT_LE(c, shape.T);
      tiles += (c + 127) / 128;
    }
    ASSERT_EQ(tiles, shape.min_tiles);  // x 2 or 3 weight slices: several items per CTA
    fill_ids(in, counts);
    const auto ref = reference_experts(in.call());

    cuda_test::DeviceInputs dev(in);
    ScopedEnv tile_m("MOEKIT_CUDA_TILE_M", "128");
    auto run = [&](const char* variant) {
      ScopedEnv wgmma("MOEKIT_CUDA_WGMMA", variant);
      dev.poison_output();
      experts(dev.call(), "grouped_mm");
      EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << "variant " << variant;
      return dev.output_bytes();
    };
    for (const auto& [persistent, base] :
         {std::pair<const char*, const char*>{"4", "3"}, {"5", "1"}, {"6", "1"}}) {
      const auto expected = run(base);
      const auto got = run(persistent);
      ASSERT_EQ(got.size(), in.output.nbytes());
      std::memcpy(in.output.data<unsigned char>(), got.data(), got.size());
      EXPECT_LE(relative_error(in.output.view(), ref), tolerance(v.dtype))
          << "variant " << persistent << " against the reference";
      EXPECT_TRUE(expected == got) << "variant " << persistent << " differs from variant " << base;
      for (int r = 0; r < 2; ++r)
        EXPECT_TRUE(run(persistent) == got) << "variant " << persistent << " run " << r + 2 << " differs";
    }
  }
}

std::vector<Variant> variants() {
  ExpertsOptions silu;
  ExpertsOptions interleaved;
  interleaved.gate_layout = GateLayout::interleaved;
  interleaved.activation = Activation::gelu;
  ExpertsOptions swiglu;
  swiglu.gate_layout = GateLayout::interleaved;
  swiglu.activation = Activation::clamped_swiglu;
  ExpertsOptions no_gate;
  no_gate.has_gate = false;
  no_gate.activation = Activation::relu;
  return {{"bf16_silu", DType::bf16, silu, false},
          {"f16_silu_bias", DType::f16, silu, true},
          {"bf16_interleaved_gelu", DType::bf16, interleaved, false},
          {"bf16_clamped_swiglu_bias", DType::bf16, swiglu, true},
          {"f16_no_gate_relu_bias", DType::f16, no_gate, true}};
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaWgmmaPersistent, ::testing::ValuesIn(variants()),
                         [](const ::testing::TestParamInfo<Variant>& i) { return i.param.name; });

}  // namespace
}  // namespace moekit
