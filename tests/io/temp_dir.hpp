// A folder under the system temp dir, removed with everything in it when the test ends.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace moekit::test {

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    // Test name and a counter keep parallel ctest runs apart.
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("moekit_io_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
             std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// A safetensors file by hand: the length field `declared` (the true header length by default),
// the header text padded with spaces so the data starts 8-byte aligned (unless `misalign_by`),
// then `data_bytes` bytes of data.
inline std::vector<std::uint8_t> raw_file(std::string header, std::size_t data_bytes,
                                          std::uint64_t declared = UINT64_MAX, std::size_t misalign_by = 0) {
  while (header.size() % 8 != misalign_by) header += ' ';
  const std::uint64_t n = declared == UINT64_MAX ? header.size() : declared;
  std::vector<std::uint8_t> b;
  for (int i = 0; i < 8; ++i) b.push_back(std::uint8_t(n >> (8 * i)));
  b.insert(b.end(), header.begin(), header.end());
  for (std::size_t i = 0; i < data_bytes; ++i) b.push_back(std::uint8_t(i * 7 + 1));
  return b;
}

}  // namespace moekit::test
