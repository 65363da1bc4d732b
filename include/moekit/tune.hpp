// moekit: the `auto` backend's table, and the pieces `moekit tune` measures it with.
//
// `auto` (CUDA only) runs one of batched_mm, grouped_mm or fused (with a fused plan) per call. It
// looks the call up in a tune table: the entries measured on a device of the same name for the same
// H, I, E, K, dtype and weight layout, and takes the entry whose T is nearest to the call's (in
// log T; a tie goes to the smaller T). Without a matching entry it runs fused with fused's own
// plan. The table is JSON (docs/cuda.md, "auto and moekit tune"):
//
//   {"schema": "moekit-tune/1",
//    "entries": [{"device": "NVIDIA H100 80GB HBM3", "hidden": 4096, "intermediate": 1280,
//                 "experts": 128, "top_k": 8, "dtype": "bf16", "transposed": false,
//                 "tokens": 16, "backend": "fused", "plan": "gemv nt=1 rg=1", "ms": 0.93}, ...]}
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moekit/backend.hpp"

namespace moekit {

struct TuneEntry {
  std::string device;  // the CUDA device's name
  std::int64_t hidden = 0, intermediate = 0, experts = 0, top_k = 0, tokens = 0;
  DType dtype = DType::bf16;
  bool transposed = false;
  std::string backend;  // batched_mm, grouped_mm or fused
  std::string plan;     // fused only: "gemv nt=1 rg=1", "grouped bm=64", ...; empty otherwise
  double ms = 0;        // the winner's median time, for the record
};

struct TuneTable {
  std::vector<TuneEntry> entries;
};

// Throws Error(invalid_argument) naming the file and the field on a malformed table.
TuneTable read_tune_table(const std::string& path);
void write_tune_table(const TuneTable& table, const std::string& path);

// The table auto consults. Unless set here, it is read once, at auto's first use, from the file
// named by $MOEKIT_TUNE_FILE (an unreadable or malformed file is an error then); with neither,
// auto has no table. Passing null clears it (auto then uses its heuristic).
void set_tune_table(std::shared_ptr<const TuneTable> table);
std::shared_ptr<const TuneTable> current_tune_table();

// One runnable choice: a registered backend name, and for fused a plan.
struct TuneCandidate {
  std::string backend;
  std::string plan;
  std::string label() const { return plan.empty() ? backend : backend + " (" + plan + ")"; }
};

// What auto would run for this (validated) call, and why ("table T=16", "no table entry", ...).
struct AutoChoice {
  TuneCandidate candidate;
  std::string why;
};
AutoChoice auto_choice(const ExpertsCall& call);

// The candidates `moekit tune` times for a call: every sync-free CUDA backend and fused plan that
// can run it.
std::vector<TuneCandidate> tune_candidates(const ExpertsCall& call);
std::size_t candidate_workspace_bytes(const ExpertsCall& call, const TuneCandidate& c);
// Runs one candidate (no allocation: the workspace is the caller's). Throws like experts().
void run_candidate(const ExpertsCall& call, const TuneCandidate& c, const RunContext& context, Workspace workspace);
// The name of CUDA device `index` as tables store it.
std::string cuda_device_name(int index);

}  // namespace moekit
