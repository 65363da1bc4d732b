// The C API of the MoE block (moekit_block_*): a checkpoint layer behind an opaque handle.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "capi/capi_common.hpp"
#include "moekit/moe_block.hpp"
#include "moekit/safetensors.hpp"

struct moekit_block {
  moekit::MoeBlock block;
  bool routed = false;  // a forward without given routing has run, so routing_*() hold one
};

namespace {

using namespace moekit;
using namespace moekit::capi;

DLDataType to_dl(DType t) {
  switch (t) {
    case DType::bf16: return {kDLBfloat, 16, 1};
    case DType::f16: return {kDLFloat, 16, 1};
    case DType::f32: return {kDLFloat, 32, 1};
    case DType::f64: return {kDLFloat, 64, 1};
    case DType::i32: return {kDLInt, 32, 1};
    case DType::i64: return {kDLInt, 64, 1};
  }
  return {kDLOpaqueHandle, 0, 0};
}

moekit_block& checked(moekit_block* block, const char* fn) {
  if (block == nullptr) fail(std::string(fn) + ": block is NULL");
  return *block;
}

// Host [T, K] copy target of dtype `want`, contiguous.
void copy_routing(const Tensor& from, const DLTensor* to, const char* name, DType want) {
  const TensorView v = to_view(to, name);
  if (!v.defined()) fail(std::string("moekit_block_routing: ") + name + " is NULL");
  if (v.device.type != DeviceType::cpu) fail(std::string("moekit_block_routing: ") + name + " must be a host tensor");
  if (v.dtype != want)
    fail(std::string("moekit_block_routing: ") + name + " must be " + std::string(dtype_name(want)) + ", got " +
         std::string(dtype_name(v.dtype)));
  const TensorView f = from.view();
  if (v.shape_string() != f.shape_string())
    fail(std::string("moekit_block_routing: ") + name + " must be " + f.shape_string() + " (the last forward's), got " +
         v.shape_string());
  if (!v.is_contiguous()) fail(std::string("moekit_block_routing: ") + name + " must be contiguous");
  std::memcpy(v.data, f.data, std::size_t(f.numel()) * dtype_size(want));
}

}  // namespace

extern "C" {

int moekit_block_load(const char* model_dir, int layer, DLDevice device, moekit_block** block) {
  return guarded([&] {
    if (block == nullptr) fail("moekit_block_load: block (the result pointer) is NULL");
    *block = nullptr;
    if (model_dir == nullptr) fail("moekit_block_load: model_dir is NULL");
    if (layer < -1) fail("moekit_block_load: layer must be >= 0, or -1 for the first MoE layer; got " + std::to_string(layer));
    const Device where = to_device(device, "moekit_block_load's device");
    const ModelConfig config = load_model_config(model_dir);
    const auto checkpoint = safetensors::Checkpoint::open(model_dir);
    auto handle = std::make_unique<moekit_block>();
    handle->block = MoeBlock::load(config, layer < 0 ? first_moe_layer(config) : layer, checkpoint);
    if (where.type != DeviceType::cpu) handle->block.to(where);
    *block = handle.release();
  });
}

void moekit_block_free(moekit_block* block) { delete block; }

int moekit_block_get_info(const moekit_block* block, moekit_block_info* info) {
  return guarded([&] {
    if (block == nullptr) fail("moekit_block_get_info: block is NULL");
    if (info == nullptr) fail("moekit_block_get_info: info is NULL");
    if (info->struct_size < sizeof(moekit_block_info))
      fail("moekit_block_info.struct_size is " + std::to_string(info->struct_size) + ", expected " +
           std::to_string(sizeof(moekit_block_info)) + " (set it to sizeof(moekit_block_info))");
    const MoeBlock& b = block->block;
    const ModelConfig& c = b.config();
    info->layer = b.layer();
    info->hidden_size = c.hidden_size;
    info->num_experts = c.num_experts;
    info->top_k = c.num_experts_per_tok;
    info->moe_intermediate_size = c.moe_intermediate_size;
    info->dtype = to_dl(b.dtype());
    const Device d = b.device();
    info->device = {d.type == DeviceType::cuda ? kDLCUDA : kDLCPU, d.index};
    std::memset(info->model_type, 0, sizeof(info->model_type));
    std::memcpy(info->model_type, c.model_type.data(), std::min(c.model_type.size(), sizeof(info->model_type) - 1));
  });
}

int moekit_block_forward(moekit_block* block, const DLTensor* hidden_states, const DLTensor* output,
                         const DLTensor* top_k_index, const DLTensor* top_k_weights, const char* backend,
                         void* stream) {
  return guarded([&] {
    moekit_block& b = checked(block, "moekit_block_forward");
    const TensorView x = to_view(hidden_states, "hidden_states"), out = to_view(output, "output");
    const TensorView idx = to_view(top_k_index, "top_k_index"), w = to_view(top_k_weights, "top_k_weights");
    if (idx.defined() != w.defined())
      fail("moekit_block_forward: give both top_k_index and top_k_weights, or neither");
    RunContext context;
    context.stream = stream;
    const std::string_view name = backend != nullptr ? std::string_view(backend) : std::string_view("grouped_mm");
    b.block.forward(x, out, name, context, idx, w);
    if (!idx.defined()) b.routed = true;
  });
}

int moekit_block_routing(const moekit_block* block, const DLTensor* top_k_index, const DLTensor* top_k_weights) {
  return guarded([&] {
    if (block == nullptr) fail("moekit_block_routing: block is NULL");
    if (!block->routed) fail("moekit_block_routing: no moekit_block_forward without given routing has run yet");
    copy_routing(block->block.routing_index_host(), top_k_index, "top_k_index", DType::i32);
    copy_routing(block->block.routing_weights_host(), top_k_weights, "top_k_weights", DType::f32);
  });
}

}  // extern "C"
