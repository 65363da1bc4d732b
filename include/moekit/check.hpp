// moekit: the conformance matrix shared by `moekit check` and the test suite.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moekit/backend.hpp"
#include "moekit/inputs.hpp"

namespace moekit {

struct CheckCase {
  std::string name;  // "bf16/gpt_oss/T=7", unique within the matrix
  InputSpec spec;
};

// Every dtype x variant x edge shape. `quick` keeps one edge-shape sweep per dtype.
std::vector<CheckCase> conformance_cases(bool quick = false);

// Relative tolerance on max|out - ref| / max|ref|: f32 1e-5, f16 2e-3, bf16 1e-2.
double tolerance(DType dtype);

struct CheckResult {
  bool passed = false;
  bool skipped = false;       // the backend does not support this case (reason in detail)
  double rel_error = 0.0;     // max|out - ref| / max(max|ref|, tiny); inf when NaN or unwritten
  double tolerance = 0.0;
  std::string detail;
};

// Runs `backend` on fresh random inputs of the case (output poisoned with NaN first) and
// compares with reference_experts(). Never throws for a mismatch; a backend error is a failure.
CheckResult check_backend(const Backend& backend, const CheckCase& c, std::uint64_t seed,
                          const RunContext& context = {});

// max|out - ref| / max|ref| over the host output; NaN/inf in out gives +inf.
double relative_error(const TensorView& out, const std::vector<double>& ref);

}  // namespace moekit
