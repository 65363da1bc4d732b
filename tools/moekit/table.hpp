// moekit CLI: aligned plain-text tables and the number formats they use.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace moekit_cli {

class Table {
 public:
  enum class Align { left, right };
  struct Column {
    std::string title;
    Align align = Align::right;
  };

  explicit Table(std::vector<Column> columns);
  // Missing trailing cells print empty; extra cells are an error (throws std::logic_error).
  void add_row(std::vector<std::string> cells);
  std::size_t rows() const noexcept { return rows_.size(); }
  // Header, a rule, the rows; columns two spaces apart, trailing blanks trimmed.
  void print(std::ostream& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

std::string fixed(double value, int decimals);      // "12.35"; "-" for NaN
std::string significant(double value, int digits);  // 3 significant digits: "0.0123", "1.23e+04"
std::string bytes_iec(std::uint64_t bytes);         // "512 B", "3.75 GiB"
std::string count_of(std::int64_t n, const char* noun);  // "1 thread", "2 threads"

}  // namespace moekit_cli
