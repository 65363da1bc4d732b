// `moekit run`: one MoE layer of a Hugging Face checkpoint on hidden states from a safetensors file.
#include <cstring>
#include <memory>

#include "cli.hpp"
#include "commands.hpp"
#include "run_device.hpp"
#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/moe_block.hpp"
#include "moekit/safetensors.hpp"

namespace moekit_cli {
namespace {

struct RunOptions {
  std::string model, input, output, backend = "grouped_mm", device = "cpu";
  int layer = -1;
};

// OUT always carries int32 ids and fp32 weights, whatever IN held.
moekit::Tensor convert(const moekit::TensorView& v, moekit::DType to) {
  moekit::Tensor t(to, v.shape.data(), v.rank);
  for (std::int64_t i = 0; i < v.numel(); ++i) {
    if (to == moekit::DType::i32)
      t.data<std::int32_t>()[i] = std::int32_t(moekit::element_as_int(v, i));
    else
      t.data<float>()[i] = float(moekit::element_as_double(v, i));
  }
  return t;
}

// A device copy of a host tensor, freed with the object (moekit run only: one forward per process).
class OnDevice {
 public:
  OnDevice(const moekit::TensorView& host, moekit::Device device) : view_(host) {
    if (device.type == moekit::DeviceType::cpu || !host.defined()) return;
    storage_ = moekit::Tensor(host.dtype, host.shape.data(), host.rank);  // a contiguous host copy first
    std::memcpy(storage_.view().data, host.data, host.nbytes());
    view_ = moekit_cli::upload_to_device(storage_.view(), device);
  }
  ~OnDevice() { moekit_cli::free_on_device(view_); }
  OnDevice(const OnDevice&) = delete;
  OnDevice& operator=(const OnDevice&) = delete;
  const moekit::TensorView& view() const { return view_; }

 private:
  moekit::Tensor storage_;
  moekit::TensorView view_;
};

int run_command(const RunOptions& o) {
  const moekit::DeviceType device_type = parse_device(o.device);
  const moekit::Device device{device_type, 0};
  const moekit::ModelConfig config = moekit::load_model_config(o.model);
  const int layer = o.layer < 0 ? moekit::first_moe_layer(config) : o.layer;
  const auto checkpoint = moekit::safetensors::Checkpoint::open(o.model);
  moekit::MoeBlock block = moekit::MoeBlock::load(config, layer, checkpoint);

  const auto in = moekit::safetensors::File::open(o.input);
  if (!in.find("hidden_states")) usage("--input " + o.input + " holds no 'hidden_states' tensor");
  const moekit::TensorView x = in.view("hidden_states");
  if (x.rank != 2 || x.shape[1] != config.hidden_size)
    usage("--input: hidden_states must be [T, " + std::to_string(config.hidden_size) + "], got " + x.shape_string());
  if (x.dtype != block.dtype())
    usage("--input: hidden_states are " + std::string(moekit::dtype_name(x.dtype)) + " but layer " +
          std::to_string(layer) + "'s weights are " + std::string(moekit::dtype_name(block.dtype())));
  const bool has_idx = in.find("top_k_index") != nullptr, has_w = in.find("top_k_weights") != nullptr;
  if (has_idx != has_w) usage("--input holds only one of top_k_index and top_k_weights; give both or neither");

  moekit::Tensor out(x.dtype, x.shape.data(), 2);
  moekit::Tensor idx, w;
  if (device_type == moekit::DeviceType::cuda) block.to(device);
  const OnDevice dx(x, device), dout(out.view(), device);
  if (has_idx) {
    const moekit::TensorView gi = in.view("top_k_index"), gw = in.view("top_k_weights");
    const OnDevice dgi(gi, device), dgw(gw, device);
    block.forward(dx.view(), dout.view(), o.backend, {}, dgi.view(), dgw.view());
    idx = convert(gi, moekit::DType::i32);
    w = convert(gw, moekit::DType::f32);
  } else {
    block.forward(dx.view(), dout.view(), o.backend);
    idx = convert(block.routing_index_host(), moekit::DType::i32);
    w = convert(block.routing_weights_host(), moekit::DType::f32);
  }
  if (device_type == moekit::DeviceType::cuda) moekit_cli::download_from_device(dout.view(), out.view());
  moekit::safetensors::write_file(o.output, {{"hidden_states", out.view()}, {"top_k_index", idx.view()},
                                             {"top_k_weights", w.view()}});
  return 0;
}

}  // namespace

Command add_run_command(CLI::App& parent) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* sub = parent.add_subcommand("run", "compute one MoE layer of a Hugging Face checkpoint");
  sub->add_option("--model", o->model, "folder with config.json and *.safetensors")->required();
  sub->add_option("--layer", o->layer, "layer index (default: the first MoE layer)");
  sub->add_option("--input", o->input, "safetensors file with hidden_states [T, H] (and optionally top_k_index, top_k_weights)")
      ->required();
  sub->add_option("--output", o->output, "safetensors file to write hidden_states, top_k_index, top_k_weights")->required();
  sub->add_option("--backend", o->backend, "experts backend")->capture_default_str();
  sub->add_option("--device", o->device, "cpu or cuda (the GPU cuda:0)")->capture_default_str();
  return {sub, [o] { return run_command(*o); }};
}

}  // namespace moekit_cli
