// moekit: the float64 oracle of the experts call.
#pragma once

#include <vector>

#include "moekit/experts.hpp"

namespace moekit {

// Computes the call in double precision from the host inputs (validated first) and returns
// out[T * H] row-major. call.output is not touched.
std::vector<double> reference_experts(const ExpertsCall& call);

// Scalar activations in double, as the reference and tests define them.
double reference_gate(double g, double u, const ExpertsOptions& options);  // has_gate
double reference_act(double v, Activation a);                              // plain act (no gate)

}  // namespace moekit
