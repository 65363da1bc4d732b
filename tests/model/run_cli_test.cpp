// `moekit run` end to end: the CLI binary on tiny checkpoints, its OUT file against the float64
// reference of the same layer loaded in-process, and its error contract (exit 2, one "moekit: " line).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "moekit/backend.hpp"
#include "moekit/check.hpp"
#include "moekit/inputs.hpp"
#include "moekit/moe_block.hpp"
#include "moekit/router.hpp"
#include "moekit/safetensors.hpp"
#include "tiny_checkpoint.hpp"

#ifndef MOEKIT_CLI_PATH
#error "MOEKIT_CLI_PATH must name the moekit CLI binary"
#endif

namespace {

namespace fs = std::filesystem;
using namespace moekit;
using moekit_test::kTinyLayer;

double tol(DType d) { return d == DType::f32 ? 1e-4 : 2e-2; }

// A path or argument for /bin/sh, safe whatever it holds.
std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Names carry the pid and the test's name, because ctest -j runs these next to moekit_model_tests,
// whose tiny checkpoints live in the same temp folder.
std::string unique_name() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "runcli_" + std::to_string(::getpid()) + "_" + info->name();
  for (char& c : name)
    if (c == '/') c = '_';  // parameterised tests are named "Suite/Test/0"
  return name;
}

// The checkpoint folder write_tiny_checkpoint makes and a work folder for IN, OUT and stderr; both
// removed when the test ends, passed or not.
struct TempDirs {
  fs::path work = fs::temp_directory_path() / ("moekit_" + unique_name());
  std::vector<fs::path> extra;
  TempDirs() {
    fs::remove_all(work);
    fs::create_directories(work);
  }
  ~TempDirs() {
    std::error_code ec;
    fs::remove_all(work, ec);
    for (const fs::path& p : extra) fs::remove_all(p, ec);
  }
  std::string checkpoint(moekit_test::TinySpec spec) {
    const std::string dir = moekit_test::write_tiny_checkpoint(spec, unique_name());
    extra.emplace_back(dir);
    return dir;
  }
};

struct CliResult {
  int status = -1;  // exit status, or -1 when the process did not exit normally
  std::string err;
};

CliResult run_cli(const TempDirs& t, const std::string& args) {
  const fs::path err = t.work / "stderr.txt";
  const std::string cmd = quote(MOEKIT_CLI_PATH) + " " + args + " >/dev/null 2>" + quote(err.string());
  const int raw = std::system(cmd.c_str());
  CliResult r;
  if (raw != -1 && WIFEXITED(raw)) r.status = WEXITSTATUS(raw);
  r.err = read_text(err);
  return r;
}

std::string run_args(const std::string& model, const fs::path& in, const fs::path& out, const std::string& backend,
                     DeviceType device = DeviceType::cpu) {
  return "run --model " + quote(model) + " --input " + quote(in.string()) + " --output " + quote(out.string()) +
         " --backend " + quote(backend) + " --device " + std::string(device_type_name(device));
}

// Every backend of the device: a backend added later (a `fused` one) is covered without a change.
std::vector<std::string> backends_of(DeviceType device) {
  std::vector<std::string> names;
  for (const Backend* b : default_registry().list())
    if (b->device() == device && b->available().ok) names.emplace_back(b->name());
  return names;
}

bool have_gpu() { return !backends_of(DeviceType::cuda).empty(); }

#define SKIP_WITHOUT_GPU() \
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device"

// A backend added later may decline a tiny shape (supports() says no); the built-in ones may not.
bool declined(const std::string& backend, const CliResult& r) {
  const bool builtin = backend == "eager" || backend == "batched_mm" || backend == "grouped_mm";
  if (builtin || r.status != 2 || r.err.find("does not support") == std::string::npos) return false;
  std::printf("[   NOTE   ] %s declined: %s", backend.c_str(), r.err.c_str());
  return true;
}

void check_routed_run(const moekit_test::TinySpec& spec, DeviceType device = DeviceType::cpu) {
  TempDirs t;
  const std::string dir = t.checkpoint(spec);
  const ModelConfig config = load_model_config(dir);
  const auto checkpoint = safetensors::Checkpoint::open(dir);
  MoeBlock block = MoeBlock::load(config, kTinyLayer, checkpoint);
  ASSERT_EQ(block.dtype(), spec.dtype);

  const std::int64_t T = 7, H = config.hidden_size, K = config.num_experts_per_tok;
  Tensor x(spec.dtype, {T, H});
  fill_uniform(x, 1.0f, 99);
  const fs::path in = t.work / "IN.safetensors";
  safetensors::write_file(in.string(), {{"hidden_states", x.view()}});

  const moekit_test::ReferenceRouting ref = moekit_test::reference_routing(block, config, x);
  const std::vector<std::int32_t>& ref_idx = ref.index;
  const std::vector<float>& ref_w = ref.weights;

  for (const std::string& backend : backends_of(device)) {
    SCOPED_TRACE(backend);
    const fs::path out_path = t.work / ("OUT_" + backend + ".safetensors");
    // Without --layer the CLI picks the first MoE layer; the tiny checkpoints hold only layer
    // kTinyLayer, which is the first MoE layer where layer 0 is dense (DeepSeek-V3, GLM-4.5,
    // Qwen2-MoE here) and needs naming where every layer is MoE.
    const std::string layer_arg =
        first_moe_layer(config) == kTinyLayer ? "" : " --layer " + std::to_string(kTinyLayer);
    const CliResult r = run_cli(t, run_args(dir, in, out_path, backend, device) + layer_arg);
    if (declined(backend, r)) continue;
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");

    const auto out = safetensors::File::open(out_path.string());
    const TensorView oh = out.view("hidden_states"), oi = out.view("top_k_index"), ow = out.view("top_k_weights");
    ASSERT_EQ(oh.dtype, spec.dtype);
    ASSERT_EQ(oh.shape_string(), x.view().shape_string());
    ASSERT_EQ(oi.dtype, DType::i32);
    ASSERT_EQ(ow.dtype, DType::f32);
    ASSERT_EQ(oi.numel(), T * K);
    ASSERT_EQ(ow.numel(), T * K);
    for (std::int64_t i = 0; i < T * K; ++i) {
      ASSERT_EQ(oi.as<std::int32_t>()[i], ref_idx[std::size_t(i)]) << "routing differs at " << i;
      EXPECT_NEAR(ow.as<float>()[i], ref_w[std::size_t(i)], 1e-5 * (1 + std::fabs(ref_w[std::size_t(i)])));
    }
    EXPECT_LE(relative_error(oh, reference_moe_block(block, x, oi, ow)), tol(spec.dtype));
  }
}

void check_given_routing_run(const moekit_test::TinySpec& spec, DeviceType device = DeviceType::cpu) {
  TempDirs t;
  const std::string dir = t.checkpoint(spec);
  const ModelConfig config = load_model_config(dir);
  const auto checkpoint = safetensors::Checkpoint::open(dir);
  MoeBlock block = MoeBlock::load(config, kTinyLayer, checkpoint);

  const std::int64_t T = 7, H = config.hidden_size, K = config.num_experts_per_tok, E = config.num_experts;
  Tensor x(spec.dtype, {T, H});
  fill_uniform(x, 1.0f, 7);
  // One sentinel id >= E, as expert parallelism hands over for experts on other ranks.
  Tensor gi(DType::i64, {T, K}), gw(DType::f32, {T, K});
  for (std::int64_t i = 0; i < T * K; ++i) {
    gi.data<std::int64_t>()[i] = i == 3 ? E + 1 : (i * 3 + i / K) % E;
    gw.data<float>()[i] = 0.25f + 0.1f * float(i % 3);
  }
  for (std::int64_t tk = 0; tk < T; ++tk)  // distinct experts per token
    if (gi.data<std::int64_t>()[tk * K] == gi.data<std::int64_t>()[tk * K + 1])
      gi.data<std::int64_t>()[tk * K + 1] = (gi.data<std::int64_t>()[tk * K] + 1) % E;
  const fs::path in = t.work / "IN.safetensors";
  safetensors::write_file(in.string(), {{"hidden_states", x.view()}, {"top_k_index", gi.view()}, {"top_k_weights", gw.view()}});
  // Without the router and the shared expert(s): the experts call alone.
  const std::vector<double> ref = reference_moe_block(block, x, gi, gw, /*with_shared=*/false);

  for (const std::string& backend : backends_of(device)) {
    SCOPED_TRACE(backend);
    const fs::path out_path = t.work / ("OUT_" + backend + ".safetensors");
    const CliResult r =
        run_cli(t, run_args(dir, in, out_path, backend, device) + " --layer " + std::to_string(kTinyLayer));
    if (declined(backend, r)) continue;
    ASSERT_EQ(r.status, 0) << r.err;

    const auto out = safetensors::File::open(out_path.string());
    const TensorView oh = out.view("hidden_states"), oi = out.view("top_k_index"), ow = out.view("top_k_weights");
    ASSERT_EQ(oh.dtype, spec.dtype);
    ASSERT_EQ(oi.dtype, DType::i32);
    ASSERT_EQ(ow.dtype, DType::f32);
    ASSERT_EQ(oi.numel(), T * K);
    // The given routing comes back as it went in, the sentinel included.
    for (std::int64_t i = 0; i < T * K; ++i) {
      EXPECT_EQ(std::int64_t(oi.as<std::int32_t>()[i]), gi.data<std::int64_t>()[i]) << i;
      EXPECT_EQ(ow.as<float>()[i], gw.data<float>()[i]) << i;
    }
    EXPECT_LE(relative_error(oh, ref), tol(spec.dtype));
  }
}

TEST(RunCli, Qwen2MoeF32SingleFile) { check_routed_run({"qwen2_moe", DType::f32, false}); }
TEST(RunCli, DeepseekV3Bf16Sharded) { check_routed_run({"deepseek_v3", DType::bf16, true}); }
TEST(RunCli, GivenRoutingQwen2MoeF32) { check_given_routing_run({"qwen2_moe", DType::f32, false}); }
TEST(RunCli, GivenRoutingDeepseekV3Bf16Sharded) { check_given_routing_run({"deepseek_v3", DType::bf16, true}); }

// Every model_type through `moekit run` on every CPU backend, both paths (own routing: fp32, single
// file; given routing: bf16, sharded).
class RunCliCpu : public testing::TestWithParam<std::string> {};
TEST_P(RunCliCpu, RoutedF32) { check_routed_run({GetParam(), DType::f32, false}); }
TEST_P(RunCliCpu, GivenRoutingBf16Sharded) { check_given_routing_run({GetParam(), DType::bf16, true}); }
INSTANTIATE_TEST_SUITE_P(AllModelTypes, RunCliCpu,
                         testing::Values("solar_open", "glm4_moe", "deepseek_v3", "mixtral", "qwen2_moe", "qwen3_moe",
                                         "olmoe", "gpt_oss"));

// The same round trips with --device cuda, for every model_type: OUT has the same format.
class RunCliCuda : public testing::TestWithParam<std::string> {};
TEST_P(RunCliCuda, RoutedF32) {
  SKIP_WITHOUT_GPU();
  check_routed_run({GetParam(), DType::f32, false}, DeviceType::cuda);
}
TEST_P(RunCliCuda, RoutedBf16Sharded) {
  SKIP_WITHOUT_GPU();
  check_routed_run({GetParam(), DType::bf16, true}, DeviceType::cuda);
}
TEST_P(RunCliCuda, GivenRoutingBf16) {
  SKIP_WITHOUT_GPU();
  check_given_routing_run({GetParam(), DType::bf16, false}, DeviceType::cuda);
}
INSTANTIATE_TEST_SUITE_P(AllModelTypes, RunCliCuda,
                         testing::Values("solar_open", "glm4_moe", "deepseek_v3", "mixtral", "qwen2_moe", "qwen3_moe",
                                         "olmoe", "gpt_oss"));

TEST(RunCli, CudaWithoutAGpuIsOneLine) {
  if (have_gpu()) GTEST_SKIP() << "a CUDA device is present";
  TempDirs t;
  const std::string dir = t.checkpoint({"mixtral", DType::f32, false});
  Tensor x(DType::f32, {2, 16});
  fill_uniform(x, 1.0f, 1);
  const fs::path in = t.work / "IN.safetensors";
  safetensors::write_file(in.string(), {{"hidden_states", x.view()}});
  const fs::path out = t.work / "OUT.safetensors";
  const CliResult r = run_cli(t, run_args(dir, in, out, "grouped_mm", DeviceType::cuda));
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err.rfind("moekit: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// exit 2 and exactly one stderr line "moekit: ..." holding `needle`.
void expect_usage_error(const CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.status, 2) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.rfind("moekit: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.back(), '\n') << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(RunCli, MissingModelFolder) {
  TempDirs t;
  Tensor x(DType::f32, {2, 16});
  fill_uniform(x, 1.0f, 1);
  const fs::path in = t.work / "IN.safetensors";
  safetensors::write_file(in.string(), {{"hidden_states", x.view()}});
  const fs::path missing = t.work / "no_such_model";
  const fs::path out = t.work / "OUT.safetensors";
  expect_usage_error(run_cli(t, run_args(missing.string(), in, out, "eager")), "no_such_model");
  EXPECT_FALSE(fs::exists(out));
}

TEST(RunCli, LayerOutOfRange) {
  TempDirs t;
  const std::string dir = t.checkpoint({"qwen2_moe", DType::f32, false});
  Tensor x(DType::f32, {2, 16});
  fill_uniform(x, 1.0f, 1);
  const fs::path in = t.work / "IN.safetensors";
  safetensors::write_file(in.string(), {{"hidden_states", x.view()}});
  const fs::path out = t.work / "OUT.safetensors";
  expect_usage_error(run_cli(t, run_args(dir, in, out, "eager") + " --layer 3"), "out of range");
  EXPECT_FALSE(fs::exists(out));
}

TEST(RunCli, WrongHiddenSize) {
  TempDirs t;
  const std::string dir = t.checkpoint({"qwen2_moe", DType::f32, false});
  Tensor x(DType::f32, {2, 15});
  fill_uniform(x, 1.0f, 1);
  const fs::path in = t.work / "IN.safetensors";
  safetensors::write_file(in.string(), {{"hidden_states", x.view()}});
  const fs::path out = t.work / "OUT.safetensors";
  expect_usage_error(run_cli(t, run_args(dir, in, out, "eager")), "hidden_states");
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
