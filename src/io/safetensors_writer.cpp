#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors_index.hpp"
#include "io/strict_json.hpp"
#include "moekit/error.hpp"
#include "moekit/safetensors.hpp"

namespace moekit::safetensors {

namespace fs = std::filesystem;

namespace {

void check_tensors(const std::vector<NamedTensor>& tensors, const std::string& label) {
  std::set<std::string_view> seen;
  for (const NamedTensor& t : tensors) {
    const std::string where = label + ": tensor " + io::quoted(t.name);
    if (t.name.empty() || t.name == "__metadata__") throw Error(Errc::invalid_argument, where + " is not a usable name");
    if (!seen.insert(t.name).second) throw Error(Errc::invalid_argument, where + " is given twice");
    const TensorView& v = t.tensor;
    if (!v.defined() || v.rank > kMaxRank) throw Error(Errc::invalid_argument, where + " is not a defined tensor view");
    if (v.device.type != DeviceType::cpu) throw Error(Errc::invalid_argument, where + " is not on the host");
    for (int d = 0; d < v.rank; ++d)
      if (v.shape[d] < 0) throw Error(Errc::invalid_argument, where + " has a negative dimension");
    if (v.numel() > 0 && !v.data) throw Error(Errc::invalid_argument, where + " has no data");
  }
}

class Output {
 public:
  explicit Output(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp" + std::to_string(::getpid())) {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) throw Error(Errc::not_found, path_ + ": cannot create (" + std::strerror(errno) + ")");
  }
  ~Output() {
    if (f_) {
      std::fclose(f_);
      std::remove(tmp_.c_str());
    }
  }
  void write(const void* p, std::size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n)
      throw Error(Errc::invalid_argument, path_ + ": write failed (" + std::strerror(errno) + ")");
  }
  void commit() {
    const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
    const int closed = std::fclose(f_);
    f_ = nullptr;
    if (!ok || closed != 0 || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      std::remove(tmp_.c_str());
      throw Error(Errc::invalid_argument, path_ + ": write failed (" + why + ")");
    }
  }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

// Copies the elements in row-major order whatever the strides, through a bounded buffer.
void write_elements(Output& out, const TensorView& v) {
  const std::size_t element = dtype_size(v.dtype);
  if (v.numel() == 0) return;
  if (v.is_contiguous()) {
    out.write(v.data, v.nbytes());
    return;
  }
  std::vector<std::uint8_t> buffer;
  buffer.reserve(1 << 20);
  std::array<std::int64_t, kMaxRank> index{};
  const auto* base = static_cast<const std::uint8_t*>(v.data);
  for (std::int64_t i = 0, n = v.numel(); i < n; ++i) {
    std::int64_t offset = 0;
    for (int d = 0; d < v.rank; ++d) offset += index[d] * v.strides[d];
    const std::uint8_t* p = base + offset * std::int64_t(element);
    buffer.insert(buffer.end(), p, p + element);
    if (buffer.size() >= (1 << 20)) {
      out.write(buffer.data(), buffer.size());
      buffer.clear();
    }
    for (int d = v.rank - 1; d >= 0 && ++index[d] == v.shape[d]; --d) index[d] = 0;
  }
  out.write(buffer.data(), buffer.size());
}

}  // namespace

void write_file(const std::string& path, const std::vector<NamedTensor>& tensors,
                const std::map<std::string, std::string>& metadata) {
  check_tensors(tensors, path);
  // The bytes go largest element first, so every tensor starts aligned to its element size
  // without gaps between tensors (which strict readers refuse); the header keeps the given order.
  std::vector<std::size_t> layout(tensors.size());
  for (std::size_t i = 0; i < layout.size(); ++i) layout[i] = i;
  std::stable_sort(layout.begin(), layout.end(), [&](std::size_t a, std::size_t b) {
    return dtype_size(tensors[a].tensor.dtype) > dtype_size(tensors[b].tensor.dtype);
  });
  std::vector<std::uint64_t> begin(tensors.size());
  std::uint64_t offset = 0;
  for (std::size_t i : layout) {
    begin[i] = offset;
    offset += tensors[i].tensor.nbytes();
  }

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& v = tensors[i].tensor;
    std::vector<std::int64_t> shape(v.shape.begin(), v.shape.begin() + v.rank);
    header[tensors[i].name] = {
        {"dtype", file_dtype_name(v.dtype)}, {"shape", shape}, {"data_offsets", {begin[i], begin[i] + v.nbytes()}}};
  }
  std::string text = header.dump();
  // Spaces pad the header (the format allows trailing whitespace) so the data section starts
  // 8-byte aligned and every tensor of a mapped file can be viewed in place.
  text.append((8 - text.size() % 8) % 8, ' ');

  Output out(path);
  std::uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = std::uint8_t(std::uint64_t(text.size()) >> (8 * i));
  out.write(length, 8);
  out.write(text.data(), text.size());
  for (std::size_t i : layout) write_elements(out, tensors[i].tensor);
  out.commit();
}

void write_sharded(const std::string& dir, const std::vector<NamedTensor>& tensors, std::uint64_t max_shard_bytes) {
  check_tensors(tensors, dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(Errc::not_found, dir + ": cannot create (" + ec.message() + ")");

  std::vector<std::vector<NamedTensor>> shards(1);
  std::uint64_t in_shard = 0, total = 0;
  for (const NamedTensor& t : tensors) {
    const std::uint64_t bytes = t.tensor.nbytes();
    if (!shards.back().empty() && in_shard + bytes > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(t);
    in_shard += bytes;
    total += bytes;
  }

  const auto five_digits = [](std::size_t i) {
    char s[32];
    std::snprintf(s, sizeof s, "%05zu", i);
    return std::string(s);
  };
  nlohmann::json weight_map = nlohmann::json::object();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const std::string file = "model-" + five_digits(i + 1) + "-of-" + five_digits(shards.size()) + ".safetensors";
    write_file((fs::path(dir) / file).string(), shards[i]);
    for (const NamedTensor& t : shards[i]) weight_map[t.name] = file;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  Output out((fs::path(dir) / detail::kIndexName).string());
  out.write(text.data(), text.size());
  out.commit();
}

}  // namespace moekit::safetensors
