#include "io/safetensors_header.hpp"

#include <algorithm>
#include <limits>
#include <string_view>

#include "io/strict_json.hpp"
#include "moekit/error.hpp"

namespace moekit::safetensors::detail {

namespace {

using Json = nlohmann::ordered_json;

// A header is an object of objects holding at most a shape array; anything deeper is malformed.
constexpr int kMaxJsonDepth = 4;

[[noreturn]] void fail(const std::string& what) { throw Error(Errc::invalid_argument, what); }

std::optional<DType> moekit_dtype(std::string_view file_name) {
  for (DType t : {DType::bf16, DType::f16, DType::f32, DType::f64, DType::i32, DType::i64})
    if (file_dtype_name(t) == file_name) return t;
  return std::nullopt;
}

// nlohmann stores non-negative integers as unsigned, negative ones as signed, others as float.
std::optional<std::uint64_t> as_unsigned(const Json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  return std::nullopt;
}

TensorInfo parse_entry(const std::string& name, const Json& entry, const std::string& where) {
  if (!entry.is_object()) fail(where + ": entry is not a JSON object");
  TensorInfo t;
  t.name = name;

  const auto dtype = entry.find("dtype");
  if (dtype == entry.end()) fail(where + ": no \"dtype\"");
  if (!dtype->is_string()) fail(where + ": \"dtype\" is not a string");
  t.dtype_name = dtype->get<std::string>();
  t.dtype = moekit_dtype(t.dtype_name);

  const auto shape = entry.find("shape");
  if (shape == entry.end()) fail(where + ": no \"shape\"");
  if (!shape->is_array()) fail(where + ": \"shape\" is not an array");
  for (const Json& d : *shape) {
    const auto dim = as_unsigned(d);
    if (!dim || *dim > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
      fail(where + ": shape holds " + d.dump() + ", not a non-negative 64-bit integer");
    t.shape.push_back(std::int64_t(*dim));
  }

  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end()) fail(where + ": no \"data_offsets\"");
  if (!offsets->is_array() || offsets->size() != 2)
    fail(where + ": \"data_offsets\" is not an array of two integers");
  const auto begin = as_unsigned((*offsets)[0]);
  const auto end = as_unsigned((*offsets)[1]);
  if (!begin || !end) fail(where + ": \"data_offsets\" holds " + offsets->dump() + ", not two non-negative integers");
  t.begin = *begin;
  t.end = *end;
  if (t.begin > t.end)
    fail(where + ": data_offsets begin " + std::to_string(t.begin) + " > end " + std::to_string(t.end));
  return t;
}

// The byte count the shape and dtype imply must be exactly the byte range the header gives.
void check_size(const TensorInfo& t, const std::string& where) {
  const auto element = file_dtype_size(t.dtype_name);
  if (!element) return;  // an unknown dtype: listable, never viewable, size unknowable
  std::uint64_t bytes = *element;
  for (std::int64_t d : t.shape)
    if (__builtin_mul_overflow(bytes, std::uint64_t(d), &bytes))
      fail(where + ": shape element count overflows 64 bits");
  if (bytes != t.end - t.begin)
    fail(where + ": shape and dtype " + t.dtype_name + " need " + std::to_string(bytes) + " bytes but data_offsets give " +
         std::to_string(t.end - t.begin));
}

std::map<std::string, std::string> parse_metadata(const Json& m, const std::string& label) {
  if (!m.is_object()) fail(label + ": \"__metadata__\" is not a JSON object");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : m.items()) {
    if (!value.is_string()) fail(label + ": \"__metadata__\" value of " + io::quoted(key) + " is not a string");
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

void check_no_overlap(std::vector<const TensorInfo*> order, const std::string& label) {
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  // Empty tensors occupy no bytes, so they may sit anywhere, even inside another's range.
  const TensorInfo* last = nullptr;
  for (const TensorInfo* t : order) {
    if (t->begin == t->end) continue;
    if (last && t->begin < last->end)
      fail(label + ": tensors " + io::quoted(last->name) + " [" + std::to_string(last->begin) + ", " +
           std::to_string(last->end) + ") and " + io::quoted(t->name) + " [" + std::to_string(t->begin) + ", " +
           std::to_string(t->end) + ") overlap");
    if (!last || t->end > last->end) last = t;
  }
}

}  // namespace

Header parse_header(const std::uint8_t* bytes, std::size_t size, const OpenOptions& options,
                    const std::string& label) {
  if (size < 8) fail(label + ": " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian whatever the host
  if (n > options.max_header_bytes)
    fail(label + ": header length " + std::to_string(n) + " exceeds the limit of " +
         std::to_string(options.max_header_bytes) + " bytes");
  if (n > size - 8)
    fail(label + ": header length " + std::to_string(n) + " exceeds the " + std::to_string(size - 8) +
         " bytes after the length field");

  Header h;
  h.data_offset = 8 + n;
  h.data_size = size - h.data_offset;
  const Json root = io::parse_strict_json(
      std::string_view(reinterpret_cast<const char*>(bytes + 8), std::size_t(n)), label + " header", kMaxJsonDepth);
  if (!root.is_object()) fail(label + ": header is not a JSON object");

  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      h.metadata = parse_metadata(value, label);
      continue;
    }
    const std::string where = label + ": tensor " + io::quoted(key);
    TensorInfo t = parse_entry(key, value, where);
    check_size(t, where);
    if (t.end > h.data_size)
      fail(where + ": data_offsets end " + std::to_string(t.end) + " is beyond the data section of " +
           std::to_string(h.data_size) + " bytes");
    h.tensors.push_back(std::move(t));
  }

  std::vector<const TensorInfo*> order;
  order.reserve(h.tensors.size());
  for (const TensorInfo& t : h.tensors) order.push_back(&t);
  check_no_overlap(std::move(order), label);
  return h;
}

}  // namespace moekit::safetensors::detail
