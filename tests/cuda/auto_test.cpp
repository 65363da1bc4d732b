// auto: the tune table's JSON, and which candidate auto runs with and without a table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "cuda/cuda_test_util.hpp"
#include "moekit/check.hpp"
#include "moekit/error.hpp"
#include "moekit/tune.hpp"

namespace moekit {
namespace {

// Restores "no table" whatever the test did.
struct TableGuard {
  ~TableGuard() { set_tune_table(nullptr); }
};

TEST(TuneTable, RoundTripsThroughJson) {
  TuneTable t;
  t.entries.push_back({"Some GPU", 4096, 1280, 128, 8, 16, DType::bf16, false, "fused", "gemv nt=1 rg=1", 0.93});
  t.entries.push_back({"Some GPU", 4096, 1280, 128, 8, 2048, DType::f16, true, "grouped_mm", "", 2.5});
  const std::string path = ::testing::TempDir() + "moekit_tune_roundtrip.json";
  write_tune_table(t, path);
  const TuneTable r = read_tune_table(path);
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries[0].plan, "gemv nt=1 rg=1");
  EXPECT_EQ(r.entries[1].dtype, DType::f16);
  EXPECT_TRUE(r.entries[1].transposed);
  EXPECT_EQ(r.entries[1].tokens, 2048);
  std::remove(path.c_str());
}

TEST(TuneTable, MalformedFilesNameTheProblem) {
  const std::string path = ::testing::TempDir() + "moekit_tune_bad.json";
  {
    std::ofstream(path) << R"({"schema": "moekit-tune/1", "entries": [{"device": "x", "hidden": 1}]})";
  }
  try {
    (void)read_tune_table(path);
    ADD_FAILURE() << "a table without intermediate was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("intermediate"), std::string::npos) << e.what();
  }
  {
    std::ofstream(path) << R"({"entries": []})";
  }
  EXPECT_THROW((void)read_tune_table(path), Error);
  std::remove(path.c_str());
  EXPECT_THROW((void)read_tune_table(path), Error);
}

TEST(Auto, IsRegisteredForCudaOnly) {
  const auto names = default_registry().names(DeviceType::cuda);
  EXPECT_NE(std::find(names.begin(), names.end(), "auto"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "fused"), names.end());
  EXPECT_EQ(default_registry().find("auto", DeviceType::cpu), nullptr);
}

TEST(Auto, FollowsTheTableAndSaysWhy) {
  MOEKIT_SKIP_WITHOUT_GPU();
  TableGuard guard;
  InputSpec s;
  s.dims = {5, 64, 32, 8, 2};
  const ExpertsInputs in = make_random_inputs(s, 3);
  cuda_test::DeviceInputs dev(in);

  set_tune_table(nullptr);
  AutoChoice c = auto_choice(dev.call());
  EXPECT_EQ(c.candidate.backend, "fused");
  EXPECT_NE(c.why.find("no tune table"), std::string::npos) << c.why;

  auto table = std::make_shared<TuneTable>();
  const std::string dev_name = cuda_device_name(0);
  table->entries.push_back({dev_name, 64, 32, 8, 2, 1, DType::bf16, false, "batched_mm", "", 0.1});
  table->entries.push_back({dev_name, 64, 32, 8, 2, 64, DType::bf16, false, "grouped_mm", "", 0.2});
  table->entries.push_back({dev_name, 64, 32, 8, 2, 4, DType::f32, false, "fused", "gemv nt=1 rg=1", 0.1});
  set_tune_table(table);
  c = auto_choice(dev.call());  // T = 5: nearer T = 1 than T = 64 in log T
  EXPECT_EQ(c.candidate.backend, "batched_mm") << c.why;
  EXPECT_NE(c.why.find("T=1"), std::string::npos) << c.why;

  // auto runs what it chose, correctly.
  const CheckResult r = check_backend(default_registry().get("auto", DeviceType::cuda), {"bf16/auto_table", s}, 4);
  EXPECT_TRUE(r.passed) << r.rel_error << " " << r.detail;

  // An entry whose plan cannot run the call: auto says so and uses fused's own plan.
  s.dtype = DType::f32;
  const ExpertsInputs in32 = make_random_inputs(s, 3);
  cuda_test::DeviceInputs dev32(in32);
  c = auto_choice(dev32.call());
  EXPECT_EQ(c.candidate.backend, "fused");
  EXPECT_NE(c.why.find("cannot run"), std::string::npos) << c.why;
  EXPECT_EQ(c.candidate.plan.rfind("grouped", 0), 0u) << c.candidate.plan;
}

TEST(Auto, CandidatesAllRun) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {7, 128, 64, 8, 2};
  const ExpertsInputs in = make_random_inputs(s, 9);
  cuda_test::DeviceInputs dev(in);
  const std::vector<TuneCandidate> all = tune_candidates(dev.call());
  EXPECT_GE(all.size(), 9u);
  for (const TuneCandidate& c : all) {
    const std::size_t bytes = candidate_workspace_bytes(dev.call(), c);
    void* ws = nullptr;
    cuda_test::ok(cudaMalloc(&ws, bytes), "workspace");
    EXPECT_NO_THROW(run_candidate(dev.call(), c, {}, Workspace{ws, bytes})) << c.label();
    cuda_test::ok(cudaDeviceSynchronize(), c.label().c_str());
    cudaFree(ws);
  }
}

}  // namespace
}  // namespace moekit
