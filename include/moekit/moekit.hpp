// moekit: the whole C++ API in one include.
#pragma once

#include "moekit/backend.hpp"
#include "moekit/check.hpp"
#include "moekit/cpu.hpp"
#include "moekit/dtype.hpp"
#include "moekit/error.hpp"
#include "moekit/experts.hpp"
#include "moekit/inputs.hpp"
#include "moekit/presets.hpp"
#include "moekit/reference.hpp"
#include "moekit/router.hpp"
#include "moekit/tensor.hpp"
