// One test per way a file or checkpoint can be malformed: each gives one moekit::Error of the
// right code whose message names the file and, where there is one, the tensor.
#include <filesystem>

#include "io/temp_dir.hpp"
#include "moekit/error.hpp"
#include "moekit/safetensors.hpp"

namespace moekit::safetensors {
namespace {

using test::raw_file;
using test::TempDir;
using test::write_bytes;

template <class F>
void expect_error(F&& f, Errc code, std::initializer_list<std::string> mentions) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const auto& m : mentions) EXPECT_NE(std::string(e.what()).find(m), std::string::npos) << e.what() << " lacks " << m;
  }
}

class Corrupt : public ::testing::Test {
 protected:
  // Writes the bytes and expects File::open to refuse them with invalid_argument.
  void refuse(const std::vector<std::uint8_t>& bytes, std::initializer_list<std::string> mentions,
              OpenOptions options = {}) {
    const std::string path = dir_.file("bad.safetensors");
    write_bytes(path, bytes);
    std::vector<std::string> all{"bad.safetensors"};
    all.insert(all.end(), mentions);
    try {
      File::open(path, options);
      ADD_FAILURE() << "opened";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument) << e.what();
      for (const auto& m : all) EXPECT_NE(std::string(e.what()).find(m), std::string::npos) << e.what() << " lacks " << m;
    }
  }
  void refuse_header(const std::string& header, std::size_t data, std::initializer_list<std::string> mentions) {
    refuse(raw_file(header, data), mentions);
  }
  TempDir dir_;
};

const std::string kGood = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST_F(Corrupt, GoodFileOpens) {
  write_bytes(dir_.file("ok.safetensors"), raw_file(kGood, 8));
  EXPECT_NO_THROW(File::open(dir_.file("ok.safetensors")));
}

TEST_F(Corrupt, MissingFile) {
  expect_error([&] { File::open(dir_.file("none.safetensors")); }, Errc::not_found, {"none.safetensors"});
}

TEST_F(Corrupt, ShorterThanEightBytes) {
  refuse({}, {"shorter"});
  refuse({1, 0, 0}, {"shorter"});
}

TEST_F(Corrupt, TruncatedHeader) {
  auto bytes = raw_file(kGood, 0);
  bytes.resize(bytes.size() - 3);
  refuse(bytes, {"header length"});
}

TEST_F(Corrupt, TruncatedData) { refuse_header(kGood, 7, {"'a'", "beyond the data section"}); }

TEST_F(Corrupt, HugeHeaderLength) {
  refuse(raw_file(kGood, 8, 1ull << 62), {"exceeds the limit"});
  refuse(raw_file(kGood, 8, UINT64_MAX - 1), {"exceeds the limit"});
  OpenOptions small;
  small.max_header_bytes = 16;
  refuse(raw_file(kGood, 8), {"exceeds the limit of 16"}, small);
}

TEST_F(Corrupt, NotJson) { refuse_header("{\"a\": ", 0, {"not valid JSON"}); }
TEST_F(Corrupt, InvalidUtf8) { refuse_header("{\"\xff\xfe\": 1}", 0, {"not valid JSON"}); }
TEST_F(Corrupt, NotAnObject) { refuse_header("[1, 2]", 0, {"not a JSON object"}); }
TEST_F(Corrupt, EntryNotAnObject) { refuse_header(R"({"a": 3})", 0, {"'a'", "not a JSON object"}); }

TEST_F(Corrupt, MissingFields) {
  refuse_header(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8, {"'a'", "no \"dtype\""});
  refuse_header(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8, {"'a'", "no \"shape\""});
  refuse_header(R"({"a":{"dtype":"F32","shape":[2]}})", 8, {"'a'", "no \"data_offsets\""});
}

TEST_F(Corrupt, WrongJsonTypes) {
  refuse_header(R"({"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", 8, {"'a'", "\"dtype\" is not a string"});
  refuse_header(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8, {"'a'", "\"shape\" is not an array"});
  refuse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, {"'a'", "data_offsets"});
  refuse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})", 8, {"'a'", "data_offsets"});
  refuse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", 8, {"'a'", "data_offsets"});
}

TEST_F(Corrupt, BadDims) {
  refuse_header(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, {"'a'", "shape holds -2"});
  refuse_header(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8, {"'a'", "shape holds 2.0"});
  refuse_header(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})", 8, {"'a'", "shape holds"});
}

TEST_F(Corrupt, SizeDisagreesWithShape) {
  refuse_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12, {"'a'", "need 12 bytes", "give 8"});
  refuse_header(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", 8, {"'a'", "need 4 bytes"});
}

TEST_F(Corrupt, ElementCountOverflows) {
  refuse_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0, {"'a'", "overflows"});
  refuse_header(R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", 0, {"'a'", "overflows"});
}

TEST_F(Corrupt, BeginAfterEnd) {
  refuse_header(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", 8, {"'a'", "begin 8 > end 0"});
}

TEST_F(Corrupt, HeaderLiesAboutOffsets) {
  refuse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[1000,1008]}})", 8, {"'a'", "end 1008 is beyond"});
  refuse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,0]}})", 8, {"'a'"});
}

TEST_F(Corrupt, OverlappingTensors) {
  refuse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                12, {"'a'", "'b'", "overlap"});
  // Out of header order, and one inside another.
  refuse_header(R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
                R"("a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})",
                8, {"'a'", "'b'", "overlap"});
}

TEST_F(Corrupt, EmptyTensorsMaySitAnywhere) {
  write_bytes(dir_.file("ok.safetensors"),
              raw_file(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                       R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}})",
                       8));
  EXPECT_NO_THROW(File::open(dir_.file("ok.safetensors")));
}

TEST_F(Corrupt, DuplicateKeys) {
  refuse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                8, {"duplicate", "'a'"});
  refuse_header(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8, {"duplicate", "'dtype'"});
}

TEST_F(Corrupt, MetadataValueNotString) {
  refuse_header(R"({"__metadata__":{"n":3}})", 0, {"__metadata__", "'n'"});
  refuse_header(R"({"__metadata__":[]})", 0, {"__metadata__"});
}

TEST_F(Corrupt, DeepNesting) { refuse_header(std::string(1000, '[') + std::string(1000, ']'), 0, {"nested"}); }

TEST_F(Corrupt, UnknownDTypeIsListedButNotViewed) {
  const std::string path = dir_.file("f8.safetensors");
  write_bytes(path, raw_file(R"({"q":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]},)"
                             R"("z":{"dtype":"MYSTERY","shape":[4],"data_offsets":[4,7]}})",
                             8));
  const File f = File::open(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_FALSE(f.tensors()[0].dtype.has_value());
  EXPECT_EQ(f.tensors()[1].dtype_name, "MYSTERY");
  expect_error([&] { f.view("q"); }, Errc::invalid_argument, {"f8.safetensors", "'q'", "F8_E4M3"});
  expect_error([&] { f.view("z"); }, Errc::invalid_argument, {"'z'", "MYSTERY"});
}

TEST_F(Corrupt, MissingTensor) {
  write_bytes(dir_.file("ok.safetensors"), raw_file(kGood, 8));
  const File f = File::open(dir_.file("ok.safetensors"));
  EXPECT_EQ(f.find("b"), nullptr);
  expect_error([&] { f.view("b"); }, Errc::not_found, {"ok.safetensors", "'b'"});
}

TEST_F(Corrupt, RankAboveFour) {
  write_bytes(dir_.file("r.safetensors"),
              raw_file(R"({"r":{"dtype":"U8","shape":[1,1,1,1,1],"data_offsets":[0,1]},)"
                       R"("s":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[8,12]}})",
                       16));
  expect_error([&] { File::open(dir_.file("r.safetensors")).view("s"); }, Errc::invalid_argument, {"'s'", "rank 5"});
}

TEST_F(Corrupt, Misaligned) {
  // Data at byte 8k + 2 of the mapping: f32 there cannot be viewed in place.
  write_bytes(dir_.file("m.safetensors"),
              raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, UINT64_MAX, 2));
  expect_error([&] { File::open(dir_.file("m.safetensors")).view("a"); }, Errc::invalid_argument, {"'a'", "aligned"});
}

// ---- sharded checkpoints ----------------------------------------------------------------------

class CorruptCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    write_bytes(dir_.file("s1.safetensors"), raw_file(kGood, 8));
    write_bytes(dir_.file("s2.safetensors"),
                raw_file(R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 8));
  }
  void index(const std::string& text) {
    std::ofstream(dir_.file("model.safetensors.index.json")) << text;
  }
  std::string dir() const { return dir_.path().string(); }
  TempDir dir_;
};

TEST_F(CorruptCheckpoint, GoodIndexOpens) {
  index(R"({"metadata":{"total_size":10},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  const Checkpoint ck = Checkpoint::open(dir());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_NO_THROW(ck.validate());
}

TEST_F(CorruptCheckpoint, NoCheckpoint) {
  expect_error([&] { Checkpoint::open(dir_.file("empty")); }, Errc::not_found, {"model.safetensors"});
}

TEST_F(CorruptCheckpoint, MalformedIndex) {
  index("{\"weight_map\": ");
  expect_error([&] { Checkpoint::open(dir()); }, Errc::invalid_argument, {"index.json", "not valid JSON"});
  index(R"({"metadata":{}})");
  expect_error([&] { Checkpoint::open(dir()); }, Errc::invalid_argument, {"index.json", "weight_map"});
  index(R"({"weight_map":{"a":1}})");
  expect_error([&] { Checkpoint::open(dir()); }, Errc::invalid_argument, {"index.json", "'a'"});
  index(R"({"weight_map":{"a":"../s1.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir()); }, Errc::invalid_argument, {"index.json", "'a'", "not a file name"});
}

TEST_F(CorruptCheckpoint, MissingShard) {
  index(R"({"weight_map":{"a":"s1.safetensors","b":"s3.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir()); }, Errc::not_found, {"index.json", "'s3.safetensors'", "missing"});
}

TEST_F(CorruptCheckpoint, TensorNotInItsShard) {
  index(R"({"weight_map":{"a":"s1.safetensors","c":"s2.safetensors"}})");
  const Checkpoint ck = Checkpoint::open(dir());
  EXPECT_NO_THROW(ck.view("a"));
  expect_error([&] { ck.view("c"); }, Errc::not_found, {"'c'", "'s2.safetensors'", "no such tensor"});
  expect_error([&] { ck.validate(); }, Errc::not_found, {"'c'"});
}

TEST_F(CorruptCheckpoint, MissingTensor) {
  index(R"({"weight_map":{"a":"s1.safetensors"}})");
  const Checkpoint ck = Checkpoint::open(dir());
  EXPECT_FALSE(ck.contains("zz"));
  expect_error([&] { ck.info("zz"); }, Errc::not_found, {"index.json", "'zz'"});
}

TEST_F(CorruptCheckpoint, TensorInTwoShards) {
  // "a" is in s1 and, by the index, in s3 too.
  write_bytes(dir_.file("s3.safetensors"), raw_file(kGood, 8));
  index(R"({"weight_map":{"a":"s3.safetensors","b":"s1.safetensors"}})");
  const Checkpoint ck = Checkpoint::open(dir());
  expect_error([&] { ck.validate(); }, Errc::invalid_argument, {"'a'", "'s1.safetensors'", "'s3.safetensors'"});
  index(R"({"weight_map":{"a":"s1.safetensors","a":"s3.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir()); }, Errc::invalid_argument, {"duplicate", "'a'"});
}

TEST_F(CorruptCheckpoint, OpensOnlyTheShardThatHoldsTheTensor) {
  // s2 is garbage; viewing a tensor of s1 must not open it.
  write_bytes(dir_.file("s2.safetensors"), {1, 2, 3});
  index(R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  const Checkpoint ck = Checkpoint::open(dir());
  EXPECT_NO_THROW(ck.view("a"));
  expect_error([&] { ck.view("b"); }, Errc::invalid_argument, {"s2.safetensors"});
}

}  // namespace
}  // namespace moekit::safetensors
