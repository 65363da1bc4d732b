#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <cmath>

#include "moekit/backend.hpp"
#include "moekit/check.hpp"
#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/reference.hpp"

namespace moekit {
namespace {

// A user's backend, as an inference engine would add one: here the float64 reference.
class ReferenceBackend final : public Backend {
 public:
  explicit ReferenceBackend(std::string name = "my_reference") : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  DeviceType device() const override { return DeviceType::cpu; }
  Support supports(const ExpertsProblem& p) const override {
    return p.dtype == DType::f32 ? Support::yes() : Support::no("f32 only");
  }
  std::size_t workspace_bytes(const ExpertsProblem&) const override { return 0; }
  void run(const ExpertsCall& call, const ExpertsProblem& p, Workspace, const RunContext&) const override {
    const auto ref = reference_experts(call);
    for (std::int64_t t = 0; t < p.tokens; ++t)
      for (std::int64_t h = 0; h < p.hidden; ++h)
        call.output.as<float>()[t * call.output.strides[0] + h] = float(ref[std::size_t(t * p.hidden + h)]);
  }

 private:
  std::string name_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Registry, BuiltinsAreListed) {
  const auto names = default_registry().names(DeviceType::cpu);
  for (const char* n : {"eager", "batched_mm", "grouped_mm"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
}

TEST(Registry, UnknownNameListsTheValidOnes) {
  const std::string msg = error_of([] { (void)default_registry().get("fast_mm", DeviceType::cpu); });
  EXPECT_NE(msg.find("unknown backend 'fast_mm'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("eager, batched_mm, grouped_mm"), std::string::npos) << msg;
}

TEST(Registry, AutoIsReserved) {
  Registry r;
  EXPECT_NE(error_of([&] { r.add(std::make_unique<ReferenceBackend>("auto")); }).find("reserved"), std::string::npos);
  EXPECT_NE(error_of([] { (void)default_registry().get("auto", DeviceType::cpu); }).find("reserved"),
            std::string::npos);
}

TEST(Registry, DuplicatesAreRefused) {
  Registry r;
  r.add(std::make_unique<ReferenceBackend>());
  EXPECT_NE(error_of([&] { r.add(std::make_unique<ReferenceBackend>()); }).find("already registered"),
            std::string::npos);
  EXPECT_NE(error_of([&] { r.add(nullptr); }).find("null"), std::string::npos);
}

TEST(Registry, UserBackendRunsThroughTheSameEntryPoint) {
  Registry r;
  register_builtin_backends(r);
  r.add(std::make_unique<ReferenceBackend>());
  InputSpec s;
  s.dims = {6, 20, 12, 4, 2};
  s.dtype = DType::f32;
  ExpertsInputs in = make_random_inputs(s, 3);
  experts(in.call(), "my_reference", {}, {}, r);
  EXPECT_LE(relative_error(in.output, reference_experts(in.call())), 1e-7);
  // The conformance harness takes user backends too.
  const CheckResult res = check_backend(*r.find("my_reference", DeviceType::cpu), {"f32/user", s}, 1);
  EXPECT_TRUE(res.passed) << res.detail;
}

TEST(Registry, UnsupportedCallsFailWithoutFallback) {
  Registry r;
  r.add(std::make_unique<ReferenceBackend>());
  InputSpec s;
  s.dims = {2, 8, 4, 2, 1};
  s.dtype = DType::bf16;
  ExpertsInputs in = make_random_inputs(s, 3);
  try {
    experts(in.call(), "my_reference", {}, {}, r);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::unsupported);
    EXPECT_NE(std::string(e.what()).find("f32 only"), std::string::npos) << e.what();
  }
  // The output was left alone (still the NaN poison): nothing else ran in its place.
  EXPECT_TRUE(std::isnan(element_as_double(in.output, 0)));
}

TEST(Registry, WorkspaceThatIsTooSmallIsAnError) {
  InputSpec s;
  s.dims = {4, 16, 8, 4, 2};
  ExpertsInputs in = make_random_inputs(s, 3);
  const ExpertsProblem p = validate(in.call());
  const std::size_t need = default_registry().get("grouped_mm", DeviceType::cpu).workspace_bytes(p);
  ASSERT_GT(need, 0u);
  alignas(64) static unsigned char small[64];
  const std::string msg = error_of([&] { experts(in.call(), "grouped_mm", {}, Workspace{small, need - 1}); });
  EXPECT_NE(msg.find("too small"), std::string::npos) << msg;
}

}  // namespace
}  // namespace moekit
