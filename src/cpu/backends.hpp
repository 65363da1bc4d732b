// moekit CPU: the built-in CPU backends, listed explicitly by register_builtin_backends().
#pragma once

#include <memory>

#include "moekit/backend.hpp"

namespace moekit::cpu {

std::unique_ptr<Backend> make_eager_backend();
std::unique_ptr<Backend> make_batched_mm_backend();
std::unique_ptr<Backend> make_grouped_mm_backend();

}  // namespace moekit::cpu
