// moekit internal: runs a device backend on host inputs, for the check harness and the tests.
#pragma once

#include "moekit/backend.hpp"

namespace moekit {

// Copies the inputs of `host_call` to the device (strides kept), poisons the device output with
// NaN and the workspace with 0xFF bytes, runs `backend`, synchronises, and copies the output back
// into host_call.output (padding included). Throws moekit::Error on any failure; in a build without
// CUDA, Errc::unsupported.
void run_staged_on_device(const Backend& backend, const ExpertsCall& host_call, const ExpertsProblem& host_problem,
                          const RunContext& context);

}  // namespace moekit
