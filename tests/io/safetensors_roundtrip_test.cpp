#include <cstring>
#include <filesystem>

#include "io/temp_dir.hpp"
#include "moekit/error.hpp"
#include "moekit/safetensors.hpp"

namespace moekit::safetensors {
namespace {

using test::TempDir;

// Distinct bytes per tensor so a read of the wrong range cannot pass.
Tensor patterned(DType t, std::initializer_list<std::int64_t> shape, std::uint8_t seed) {
  Tensor x(t, shape);
  auto* p = x.data<std::uint8_t>();
  for (std::size_t i = 0; i < x.nbytes(); ++i) p[i] = std::uint8_t(seed + i * 13);
  return x;
}

void expect_bytes_equal(const TensorView& got, const TensorView& want) {
  ASSERT_EQ(got.dtype, want.dtype);
  ASSERT_EQ(got.rank, want.rank);
  for (int d = 0; d < got.rank; ++d) ASSERT_EQ(got.shape[d], want.shape[d]);
  ASSERT_TRUE(got.is_contiguous());
  ASSERT_EQ(std::memcmp(got.data, want.data, want.nbytes()), 0);
}

TEST(SafetensorsRoundTrip, EveryDType) {
  TempDir dir;
  std::vector<Tensor> owned;
  std::vector<NamedTensor> tensors;
  std::uint8_t seed = 1;
  for (DType t : {DType::bf16, DType::f16, DType::f32, DType::f64, DType::i32, DType::i64}) {
    owned.push_back(patterned(t, {3, 5}, seed++));
    tensors.push_back({"w." + std::string(dtype_name(t)), owned.back()});
  }
  owned.push_back(patterned(DType::f32, {0, 4}, 0));
  tensors.push_back({"empty", owned.back()});
  write_file(dir.file("a.safetensors"), tensors);

  const File f = File::open(dir.file("a.safetensors"));
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(f.tensors()[i].name, tensors[i].name);  // the order they were given
    EXPECT_EQ(f.tensors()[i].dtype, tensors[i].tensor.dtype);
    EXPECT_EQ(f.tensors()[i].dtype_name, file_dtype_name(tensors[i].tensor.dtype));
    expect_bytes_equal(f.view(tensors[i].name), tensors[i].tensor);
  }
  EXPECT_EQ(f.view("empty").numel(), 0);
  EXPECT_TRUE(f.metadata().empty());
}

TEST(SafetensorsRoundTrip, PaddedStridesAreWrittenContiguous) {
  TempDir dir;
  for (DType t : {DType::bf16, DType::f32, DType::f64}) {
    // A [4, 3] window of a [4, 8] buffer (rows padded), and its transpose.
    const Tensor buffer = patterned(t, {4, 8}, 5);
    TensorView window = buffer.view();
    window.shape = {4, 3};
    window.strides = {8, 1};
    TensorView transposed = window;
    transposed.shape = {3, 4};
    transposed.strides = {1, 8};
    write_file(dir.file("s.safetensors"), {{"window", window}, {"transposed", transposed}});

    const File f = File::open(dir.file("s.safetensors"));
    const TensorView w = f.view("window"), tr = f.view("transposed");
    const std::size_t e = dtype_size(t);
    const auto* src = buffer.data<std::uint8_t>();
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 3; ++c) {
        const auto* want = src + (r * 8 + c) * e;
        ASSERT_EQ(std::memcmp(w.as<std::uint8_t>() + (r * 3 + c) * e, want, e), 0);
        ASSERT_EQ(std::memcmp(tr.as<std::uint8_t>() + (c * 4 + r) * e, want, e), 0);
      }
  }
}

TEST(SafetensorsRoundTrip, Metadata) {
  TempDir dir;
  const Tensor x = patterned(DType::f32, {2}, 9);
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "line\nbreak \"quoted\" ü"}};
  write_file(dir.file("m.safetensors"), {{"x", x}}, meta);
  EXPECT_EQ(File::open(dir.file("m.safetensors")).metadata(), meta);
}

TEST(SafetensorsRoundTrip, DataSectionIsAligned) {
  TempDir dir;
  const Tensor x = patterned(DType::f64, {3}, 1);
  write_file(dir.file("x.safetensors"), {{"odd-length-name", x}});
  const File f = File::open(dir.file("x.safetensors"));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(f.view("odd-length-name").data) % 8, 0u);
}

TEST(SafetensorsRoundTrip, ThreeShards) {
  TempDir dir;
  std::vector<Tensor> owned;
  std::vector<NamedTensor> tensors;
  for (int i = 0; i < 6; ++i) {
    owned.push_back(patterned(i % 2 ? DType::bf16 : DType::f32, {4, 4}, std::uint8_t(i * 31)));
    tensors.push_back({"layers." + std::to_string(i) + ".weight", owned.back()});
  }
  // 64, 32, 64, 32, 64, 32 bytes: two tensors per 100-byte shard.
  write_sharded(dir.path().string(), tensors, 100);

  const Checkpoint ck = Checkpoint::open(dir.path().string());
  EXPECT_EQ(ck.files(), (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                                 "model-00003-of-00003.safetensors"}));
  std::vector<std::string> want;
  for (const auto& t : tensors) want.push_back(t.name);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ck.names(), want);
  for (const auto& t : tensors) {
    ASSERT_TRUE(ck.contains(t.name));
    EXPECT_EQ(ck.info(t.name).dtype, t.tensor.dtype);
    expect_bytes_equal(ck.view(t.name), t.tensor);
  }
  EXPECT_FALSE(ck.contains("nope"));
  EXPECT_NO_THROW(ck.validate());
}

TEST(SafetensorsRoundTrip, OversizedTensorGetsItsOwnShardAndOneShardKeepsTheIndex) {
  TempDir dir;
  const Tensor small = patterned(DType::f32, {2}, 1), big = patterned(DType::f32, {64}, 2);
  write_sharded(dir.file("a"), {{"s1", small}, {"big", big}, {"s2", small}}, 16);
  EXPECT_EQ(Checkpoint::open(dir.file("a")).files().size(), 3u);

  write_sharded(dir.file("b"), {{"s1", small}, {"s2", small}}, 1 << 20);
  EXPECT_TRUE(std::filesystem::exists(dir.file("b/model.safetensors.index.json")));
  EXPECT_EQ(Checkpoint::open(dir.file("b")).files(), std::vector<std::string>{"model-00001-of-00001.safetensors"});
}

TEST(SafetensorsRoundTrip, SingleFileCheckpoint) {
  TempDir dir;
  const Tensor x = patterned(DType::i64, {2, 2}, 3);
  write_file(dir.file("model.safetensors"), {{"x", x}});
  const Checkpoint ck = Checkpoint::open(dir.path().string());
  EXPECT_EQ(ck.names(), std::vector<std::string>{"x"});
  expect_bytes_equal(ck.view("x"), x);
}

TEST(SafetensorsRoundTrip, ScalarIsViewedAsOneElement) {
  TempDir dir;
  const Tensor x = patterned(DType::f32, {1}, 3);
  const std::string header = R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})";
  test::write_bytes(dir.file("s.safetensors"), test::raw_file(header, 4));
  const File f = File::open(dir.file("s.safetensors"));
  EXPECT_TRUE(f.tensors()[0].shape.empty());
  EXPECT_EQ(f.view("s").rank, 1);
  EXPECT_EQ(f.view("s").numel(), 1);
}

TEST(SafetensorsRoundTrip, FromMemoryMatchesOpen) {
  TempDir dir;
  const std::string header = R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})";
  auto bytes = std::make_shared<const std::vector<std::uint8_t>>(test::raw_file(header, 8));
  const File f = File::from_memory(bytes, "mem");
  EXPECT_EQ(f.path(), "mem");
  EXPECT_EQ(f.view("a").as<std::uint8_t>()[0], 1);
}

TEST(SafetensorsWrite, RefusesBadInput) {
  TempDir dir;
  const Tensor x = patterned(DType::f32, {2}, 1);
  EXPECT_THROW(write_file(dir.file("d.safetensors"), {{"x", x}, {"x", x}}), Error);
  EXPECT_THROW(write_file(dir.file("d.safetensors"), {{"__metadata__", x}}), Error);
  EXPECT_THROW(write_file(dir.file("d.safetensors"), {{"u", TensorView{}}}), Error);
  EXPECT_THROW(write_file(dir.file("no/such/dir/d.safetensors"), {{"x", x}}), Error);
  EXPECT_FALSE(std::filesystem::exists(dir.file("d.safetensors")));
}

}  // namespace
}  // namespace moekit::safetensors
