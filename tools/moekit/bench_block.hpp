// moekit CLI: the MoE blocks `moekit bench` stacks: random ones of a shape (through
// MoeBlock::load and a TensorSource that makes each tensor up), or layers of a checkpoint.
#pragma once

#include <cstdint>
#include <vector>

#include "bench.hpp"
#include "moekit/moe_block.hpp"

namespace moekit_cli {

// plan.layers blocks: from plan.shape.model_dir (MoE layers from plan.shape.first_layer on), or
// random, each with its own weights (U(-1, 1) / sqrt(fan_in); zero correction bias, as a freshly
// initialised transformers model has). Host memory.
std::vector<moekit::MoeBlock> make_blocks(const BenchPlan& plan);
// The one block of a stack, built on its own (so a device bench can load and upload one at a time).
moekit::MoeBlock make_block(const BenchPlan& plan, int index);

// Bytes read and FLOPs of one block's forward on the routing of its last forward (router, hit
// experts, shared MLP), the numerators of the block's floor.
struct BlockWork {
  std::uint64_t bytes = 0;
  double flops = 0;
  std::int64_t experts_hit = 0;
};
BlockWork block_work(const moekit::MoeBlock& block, const moekit::TensorView& hidden_states,
                     const moekit::TensorView& output);

}  // namespace moekit_cli
