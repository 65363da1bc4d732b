// moekit: a non-owning tensor view and an owning host tensor.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "moekit/dtype.hpp"

namespace moekit {

enum class DeviceType : std::uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  friend bool operator==(const Device&, const Device&) = default;
};

std::string device_name(Device d);             // "cpu", "cuda:0"
std::string_view device_type_name(DeviceType t);  // "cpu", "cuda"

inline constexpr int kMaxRank = 4;

// A view of memory someone else owns. Strides are in elements.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::f32;
  Device device{};
  int rank = 0;
  std::array<std::int64_t, kMaxRank> shape{};
  std::array<std::int64_t, kMaxRank> strides{};

  // A contiguous row-major view.
  static TensorView contiguous(void* data, DType dtype, std::initializer_list<std::int64_t> shape,
                               Device device = {});

  bool defined() const noexcept { return rank > 0; }
  std::int64_t size(int dim) const noexcept { return shape[dim]; }
  std::int64_t numel() const noexcept;
  std::size_t nbytes() const noexcept { return std::size_t(numel()) * dtype_size(dtype); }
  bool is_contiguous() const noexcept;
  template <class T>
  T* as() const noexcept { return static_cast<T*>(data); }
  std::string shape_string() const;  // "[4, 128]"
};

// An owning, 64-byte-aligned, contiguous host tensor (for the CLI, tests and examples).
class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, std::initializer_list<std::int64_t> shape);
  Tensor(DType dtype, const std::int64_t* shape, int rank);

  const TensorView& view() const noexcept { return view_; }
  operator TensorView() const noexcept { return view_; }
  template <class T>
  T* data() const noexcept { return view_.as<T>(); }
  std::int64_t numel() const noexcept { return view_.numel(); }
  std::size_t nbytes() const noexcept { return view_.nbytes(); }
  DType dtype() const noexcept { return view_.dtype; }

 private:
  struct Free { void operator()(void* p) const noexcept; };
  std::unique_ptr<void, Free> storage_;
  TensorView view_{};
};

}  // namespace moekit
