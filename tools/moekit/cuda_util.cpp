#if MOEKIT_HAVE_CUDA

#include "cuda_util.hpp"

#include <algorithm>
#include <utility>

#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/tensor.hpp"
#include "table.hpp"

namespace moekit_cli::cu {

std::string error_text(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + " (" + cudaGetErrorString(err) + ")";
}

void check(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess) throw moekit::Error(moekit::Errc::device, what + ": " + error_text(err));
}

DeviceBuffer::DeviceBuffer(std::size_t bytes, const std::string& what) : bytes_(bytes) {
  if (bytes == 0) return;
  const MemInfo m = mem_info();
  if (allocation_bytes(bytes) > m.free)
    throw moekit::Error(moekit::Errc::out_of_memory, "not enough device memory for " + what + ": it needs " +
                                                         bytes_iec(bytes) + ", " + bytes_iec(m.free) + " free of " +
                                                         bytes_iec(m.total));
  const cudaError_t err = cudaMalloc(&data_, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();  // an allocation failure is not sticky: later work may go on
    data_ = nullptr;
    throw moekit::Error(err == cudaErrorMemoryAllocation ? moekit::Errc::out_of_memory : moekit::Errc::device,
                        "cudaMalloc of " + bytes_iec(bytes) + " for " + what + ": " + error_text(err));
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);  // a failure here (a dead context) has nowhere better to go
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Stream::Stream() { check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags"); }
Stream::~Stream() {
  if (stream_) cudaStreamDestroy(stream_);
}
void Stream::synchronize(const std::string& what) const { check(cudaStreamSynchronize(stream_), what); }

Event::Event() { check(cudaEventCreate(&event_), "cudaEventCreate"); }
Event::~Event() {
  if (event_) cudaEventDestroy(event_);
}
void Event::record(const Stream& stream) const { check(cudaEventRecord(event_, stream.get()), "cudaEventRecord"); }

double elapsed_s(const Event& start, const Event& stop) {
  check(cudaEventSynchronize(stop.get()), "waiting for the timed work");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, start.get(), stop.get()), "cudaEventElapsedTime");
  return double(ms) * 1e-3;
}

MemInfo mem_info() {
  std::size_t free = 0, total = 0;
  check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  return {free, total};
}

std::uint64_t allocation_bytes(std::uint64_t bytes) {
  constexpr std::uint64_t kPage = std::uint64_t(2) << 20;
  return (bytes + kPage - 1) / kPage * kPage;
}

void upload_uniform(void* dst, moekit::DType dtype, std::uint64_t count, float scale, std::uint64_t seed,
                    int threads) {
  if (count == 0) return;
  const std::uint64_t esize = moekit::dtype_size(dtype);
  const std::uint64_t chunk = std::min<std::uint64_t>(count, kUploadChunkBytes / esize);
  moekit::Tensor host(dtype, {std::int64_t(chunk)});
  auto* out = static_cast<unsigned char*>(dst);
  for (std::uint64_t begin = 0, i = 0; begin < count; begin += chunk, ++i) {
    const std::uint64_t n = std::min(chunk, count - begin);
    const moekit::TensorView part = moekit::TensorView::contiguous(host.data<void>(), dtype, {std::int64_t(n)});
    // A stream per chunk from one seed: the chunk size is part of the layout, not of the values' law.
    moekit::fill_uniform(part, scale, seed + i * 0x9e3779b97f4a7c15ull, threads);
    // Synchronous: the host chunk is refilled next.
    check(cudaMemcpy(out + begin * esize, host.data<void>(), n * esize, cudaMemcpyHostToDevice),
          "uploading random data to the device");
  }
}

void upload(void* dst, const void* src, std::size_t bytes, const std::string& what) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "uploading " + what);
}

void download(void* dst, const void* src, std::size_t bytes, const std::string& what) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "downloading " + what);
}

}  // namespace moekit_cli::cu

#endif  // MOEKIT_HAVE_CUDA
