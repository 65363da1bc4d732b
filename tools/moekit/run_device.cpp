#include "run_device.hpp"

#include <string>

#include "moekit/error.hpp"

#if MOEKIT_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace moekit_cli {

#if MOEKIT_HAVE_CUDA
namespace {
void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw moekit::Error(moekit::Errc::device, std::string(what) + ": " + cudaGetErrorName(err) + " (" +
                                                  cudaGetErrorString(err) + ")");
}
}  // namespace

moekit::TensorView upload_to_device(const moekit::TensorView& host, moekit::Device device) {
  if (!host.is_contiguous()) throw moekit::Error(moekit::Errc::invalid_argument, "upload: the tensor is not contiguous");
  check(cudaSetDevice(device.index), "selecting the CUDA device");
  moekit::TensorView d = host;
  d.device = device;
  d.data = nullptr;
  if (host.nbytes() == 0) return d;
  check(cudaMalloc(&d.data, host.nbytes()), "allocating device memory for an input");
  check(cudaMemcpy(d.data, host.data, host.nbytes(), cudaMemcpyHostToDevice), "copying an input to the device");
  return d;
}

void free_on_device(const moekit::TensorView& view) noexcept {
  if (view.device.type == moekit::DeviceType::cuda && view.data) cudaFree(view.data);
}

void download_from_device(const moekit::TensorView& src, const moekit::TensorView& dst) {
  check(cudaDeviceSynchronize(), "waiting for the device");
  if (src.nbytes()) check(cudaMemcpy(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToHost), "copying the output back");
}
#else
moekit::TensorView upload_to_device(const moekit::TensorView&, moekit::Device) {
  throw moekit::Error(moekit::Errc::unsupported, "this build of moekit has no CUDA support (configure with -DMOEKIT_CUDA=ON)");
}
void free_on_device(const moekit::TensorView&) noexcept {}
void download_from_device(const moekit::TensorView&, const moekit::TensorView&) {
  throw moekit::Error(moekit::Errc::unsupported, "this build of moekit has no CUDA support");
}
#endif

}  // namespace moekit_cli
