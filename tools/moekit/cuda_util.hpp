// moekit CLI: the CUDA runtime glue of `moekit bench --device cuda`: errors turned into
// moekit::Error, owners of device buffers, streams and events, device memory in use, and random
// device data generated on the host. CUDA builds only.
#pragma once

#if MOEKIT_HAVE_CUDA

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "moekit/dtype.hpp"

namespace moekit_cli::cu {

// Throws moekit::Error(Errc::device) "what: cudaErrorName (text)". Setup code lets it reach main
// (one line, exit 2); the bench loop turns it into a failed row.
void check(cudaError_t err, const std::string& what);
std::string error_text(cudaError_t err);

// cudaMalloc'd memory; refuses up front (Errc::out_of_memory) when the device's free memory is
// smaller than the request, so the message names what did not fit.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t bytes, const std::string& what);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const noexcept { return data_; }
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// A non-blocking stream: no implicit ordering with the legacy default stream, as in a framework.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const noexcept { return stream_; }
  void synchronize(const std::string& what) const;

 private:
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const noexcept { return event_; }
  void record(const Stream& stream) const;

 private:
  cudaEvent_t event_ = nullptr;
};

// Seconds between two recorded events; waits for `stop`.
double elapsed_s(const Event& start, const Event& stop);

struct MemInfo {
  std::uint64_t free = 0, total = 0;
  std::uint64_t used() const noexcept { return total - free; }
};
// cudaMemGetInfo on the current device: device-wide, so other processes' memory counts too.
MemInfo mem_info();

// What cudaMalloc reserves for a request: whole 2 MiB pages, so plans count like the allocator.
std::uint64_t allocation_bytes(std::uint64_t bytes);

// Writes `count` elements of `dtype` U(-scale, scale) to device memory at `dst`, generated on the
// host (moekit::fill_uniform on `threads` threads) in chunks of kUploadChunkBytes, so filling the
// weights needs one chunk of host memory whatever their size. Deterministic per seed.
inline constexpr std::uint64_t kUploadChunkBytes = std::uint64_t(256) << 20;
void upload_uniform(void* dst, moekit::DType dtype, std::uint64_t count, float scale, std::uint64_t seed,
                    int threads);
void upload(void* dst, const void* src, std::size_t bytes, const std::string& what);
void download(void* dst, const void* src, std::size_t bytes, const std::string& what);

}  // namespace moekit_cli::cu

#endif  // MOEKIT_HAVE_CUDA
