// moekit CLI: the statistics every timing in the bench reports, so CPU and GPU rows agree on them.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace moekit_cli {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Nearest rank: the smallest time that at least 90% of the calls did not exceed.
inline double p90(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto rank = std::size_t(std::ceil(0.9 * double(v.size())));
  return v[std::max<std::size_t>(rank, 1) - 1];
}

}  // namespace moekit_cli
