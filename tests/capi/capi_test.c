/* The C API from C: a call over DLPack tensors checked against a double-precision loop, padded rows,
 * and every error path returning a status and a message (never a crash). Plain C99 on purpose: it
 * proves that moekit.h is a C header. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moekit/moekit.h"

static int failures = 0;

#define CHECK(cond, ...)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                       \
      fprintf(stderr, "\n");                              \
      ++failures;                                         \
    }                                                     \
  } while (0)

enum { T = 3, H = 16, I = 8, E = 4, K = 2, XPAD = 20 };

static float x_data[T * XPAD], gate_up[E * 2 * I * H], down[E * H * I], weights[T * K], out[T * H];
static int64_t ids[T * K] = {0, 3, 2, 4 /* sentinel: 4 >= E */, 1, 1};

static DLTensor make(void* data, DLDataTypeCode code, int bits, int ndim, int64_t* shape, int64_t* strides) {
  DLTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = kDLCPU;
  t.device.device_id = 0;
  t.ndim = ndim;
  t.dtype.code = (uint8_t)code;
  t.dtype.bits = (uint8_t)bits;
  t.dtype.lanes = 1;
  t.shape = shape;
  t.strides = strides;
  t.byte_offset = 0;
  return t;
}

static double silu(double v) { return v / (1.0 + exp(-v)); }

static void reference(double* ref) {
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) ref[t * H + h] = 0.0;
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) {
      const int64_t e = ids[t * K + k];
      if (e >= E) continue;
      double mid[I];
      for (int i = 0; i < I; ++i) {
        double g = 0, u = 0;
        for (int h = 0; h < H; ++h) {
          g += (double)gate_up[(e * 2 * I + i) * H + h] * x_data[t * XPAD + h];
          u += (double)gate_up[(e * 2 * I + I + i) * H + h] * x_data[t * XPAD + h];
        }
        mid[i] = silu(g) * u;
      }
      for (int h = 0; h < H; ++h) {
        double y = 0;
        for (int i = 0; i < I; ++i) y += (double)down[(e * H + h) * I + i] * mid[i];
        ref[t * H + h] += weights[t * K + k] * y;
      }
    }
}

int main(void) {
  for (int i = 0; i < T * XPAD; ++i) x_data[i] = (i % XPAD) < H ? (float)((i * 7) % 13) / 13.0f - 0.5f : NAN;
  for (int i = 0; i < E * 2 * I * H; ++i) gate_up[i] = (float)((i * 5) % 17) / 68.0f - 0.12f;
  for (int i = 0; i < E * H * I; ++i) down[i] = (float)((i * 3) % 11) / 44.0f - 0.12f;
  for (int i = 0; i < T * K; ++i) weights[i] = 0.25f + 0.125f * (float)i;

  /* hidden_states has padded rows (stride XPAD > H): the call must honour the stride. */
  int64_t x_shape[2] = {T, H}, x_strides[2] = {XPAD, 1};
  int64_t tk_shape[2] = {T, K};
  int64_t gu_shape[3] = {E, 2 * I, H}, dn_shape[3] = {E, H, I}, out_shape[2] = {T, H};
  DLTensor x = make(x_data, kDLFloat, 32, 2, x_shape, x_strides);
  DLTensor idx = make(ids, kDLInt, 64, 2, tk_shape, NULL);
  DLTensor w = make(weights, kDLFloat, 32, 2, tk_shape, NULL);
  DLTensor gu = make(gate_up, kDLFloat, 32, 3, gu_shape, NULL);
  DLTensor dn = make(down, kDLFloat, 32, 3, dn_shape, NULL);
  DLTensor o = make(out, kDLFloat, 32, 2, out_shape, NULL);

  moekit_experts_options options;
  moekit_experts_options_init(&options);
  CHECK(options.struct_size == sizeof options, "options_init sets struct_size");
  CHECK(options.has_gate == 1 && options.transposed == 0 && options.interleaved == 0, "default options");
  CHECK(moekit_abi_version() == MOEKIT_ABI_VERSION, "ABI version %d", moekit_abi_version());
  CHECK(strlen(moekit_version()) > 0, "version string");

  double ref[T * H];
  reference(ref);
  const char* backends[] = {"eager", "batched_mm", "grouped_mm", NULL};
  for (int b = 0; b < 4; ++b) {
    for (int i = 0; i < T * H; ++i) out[i] = NAN;
    int st = moekit_experts(&x, &idx, &w, &gu, &dn, NULL, NULL, &o, &options, backends[b], NULL);
    CHECK(st == MOEKIT_OK, "%s: status %d: %s", backends[b] ? backends[b] : "(default)", st, moekit_last_error());
    double err = 0, mag = 0;
    for (int i = 0; i < T * H; ++i) {
      err = fmax(err, fabs(out[i] - ref[i]));
      mag = fmax(mag, fabs(ref[i]));
    }
    CHECK(err / mag <= 1e-5, "%s: relative error %g", backends[b] ? backends[b] : "(default)", err / mag);
  }
  /* NULL options are the defaults too. */
  CHECK(moekit_experts(&x, &idx, &w, &gu, &dn, NULL, NULL, &o, NULL, "eager", NULL) == MOEKIT_OK, "NULL options: %s",
        moekit_last_error());

  /* Errors: a status, a message naming the problem, and nothing else. */
  int st = moekit_experts(&x, &idx, &w, &gu, &dn, NULL, NULL, &o, &options, "nope", NULL);
  CHECK(st == MOEKIT_ERROR_NOT_FOUND, "unknown backend status %d", st);
  CHECK(strstr(moekit_last_error(), "unknown backend 'nope'") != NULL, "message: %s", moekit_last_error());
  CHECK(strcmp(moekit_status_name(st), "not_found") == 0, "status name %s", moekit_status_name(st));

  st = moekit_experts(NULL, &idx, &w, &gu, &dn, NULL, NULL, &o, &options, NULL, NULL);
  CHECK(st == MOEKIT_ERROR_INVALID_ARGUMENT && strstr(moekit_last_error(), "hidden_states is missing"),
        "NULL hidden_states: %d %s", st, moekit_last_error());

  int64_t bad_dn_shape[3] = {E, H, I + 1};
  DLTensor bad = make(down, kDLFloat, 32, 3, bad_dn_shape, NULL);
  st = moekit_experts(&x, &idx, &w, &gu, &bad, NULL, NULL, &o, &options, NULL, NULL);
  CHECK(st == MOEKIT_ERROR_INVALID_ARGUMENT && strstr(moekit_last_error(), "down_proj must be"),
        "bad shape: %d %s", st, moekit_last_error());

  DLTensor vec = gu;
  vec.dtype.lanes = 4;
  st = moekit_experts(&x, &idx, &w, &vec, &dn, NULL, NULL, &o, &options, NULL, NULL);
  CHECK(st == MOEKIT_ERROR_INVALID_ARGUMENT && strstr(moekit_last_error(), "gate_up_proj has element type float32x4"),
        "vector dtype: %d %s", st, moekit_last_error());

  DLTensor metal = x;
  metal.device.device_type = kDLMetal;
  st = moekit_experts(&metal, &idx, &w, &gu, &dn, NULL, NULL, &o, &options, NULL, NULL);
  CHECK(st == MOEKIT_ERROR_INVALID_ARGUMENT && strstr(moekit_last_error(), "hidden_states is on DLPack device type 8"),
        "foreign device: %d %s", st, moekit_last_error());

  int64_t gu_strides[3] = {2 * I * H, 1, 2 * I}; /* a transposed view: not contiguous */
  DLTensor gu_t = make(gate_up, kDLFloat, 32, 3, gu_shape, gu_strides);
  st = moekit_experts(&x, &idx, &w, &gu_t, &dn, NULL, NULL, &o, &options, NULL, NULL);
  CHECK(st == MOEKIT_ERROR_INVALID_ARGUMENT && strstr(moekit_last_error(), "gate_up_proj must be contiguous"),
        "strided weights: %d %s", st, moekit_last_error());

  DLTensor shifted = x;
  shifted.byte_offset = 2; /* not a whole float */
  st = moekit_experts(&shifted, &idx, &w, &gu, &dn, NULL, NULL, &o, &options, NULL, NULL);
  CHECK(st == MOEKIT_ERROR_INVALID_ARGUMENT && strstr(moekit_last_error(), "byte_offset"), "byte_offset: %d %s", st,
        moekit_last_error());

  moekit_experts_options old = options;
  old.struct_size = 4;
  st = moekit_experts(&x, &idx, &w, &gu, &dn, NULL, NULL, &o, &old, NULL, NULL);
  CHECK(st == MOEKIT_ERROR_INVALID_ARGUMENT && strstr(moekit_last_error(), "struct_size"), "struct_size: %d %s", st,
        moekit_last_error());

  moekit_experts_options act = options;
  act.activation = "tanh";
  st = moekit_experts(&x, &idx, &w, &gu, &dn, NULL, NULL, &o, &act, NULL, NULL);
  CHECK(st == MOEKIT_ERROR_INVALID_ARGUMENT && strstr(moekit_last_error(), "unknown activation 'tanh'"),
        "activation: %d %s", st, moekit_last_error());

  ids[1] = -3;
  st = moekit_experts(&x, &idx, &w, &gu, &dn, NULL, NULL, &o, &options, NULL, NULL);
  CHECK(st == MOEKIT_ERROR_INVALID_ARGUMENT && strstr(moekit_last_error(), "is negative"), "negative id: %d %s", st,
        moekit_last_error());
  ids[1] = 3;

  /* The backend list: sized by a first call, filled by a second. */
  size_t length = 0;
  CHECK(moekit_backends(NULL, 0, &length) == MOEKIT_OK && length > 0, "backends length %zu", length);
  char* text = malloc(length + 1);
  CHECK(moekit_backends(text, length + 1, &length) == MOEKIT_OK, "backends: %s", moekit_last_error());
  CHECK(strstr(text, "grouped_mm\tcpu\tavailable\n") != NULL, "backends list:\n%s", text);
  free(text);
  CHECK(moekit_backends(NULL, 8, &length) == MOEKIT_ERROR_INVALID_ARGUMENT, "NULL buffer with a capacity");

  /* The block's entry points on bad arguments (tests/python/test_block.py runs a real checkpoint). */
  DLDevice cpu = {kDLCPU, 0};
  moekit_block* block = (moekit_block*)&failures; /* must be reset to NULL on failure */
  st = moekit_block_load("/nonexistent/moekit-model", -1, cpu, &block);
  CHECK(st != MOEKIT_OK && block == NULL && strstr(moekit_last_error(), "config.json"), "missing folder: %d %s", st,
        moekit_last_error());
  CHECK(moekit_block_load(NULL, -1, cpu, &block) == MOEKIT_ERROR_INVALID_ARGUMENT, "NULL model_dir");
  CHECK(moekit_block_load(".", -1, cpu, NULL) == MOEKIT_ERROR_INVALID_ARGUMENT, "NULL result pointer");
  CHECK(moekit_block_load(".", -2, cpu, &block) == MOEKIT_ERROR_INVALID_ARGUMENT, "layer -2");
  CHECK(moekit_block_forward(NULL, &x, &o, NULL, NULL, NULL, NULL) == MOEKIT_ERROR_INVALID_ARGUMENT &&
            strstr(moekit_last_error(), "block is NULL"),
        "forward on NULL: %s", moekit_last_error());
  moekit_block_info info;
  info.struct_size = sizeof info;
  CHECK(moekit_block_get_info(NULL, &info) == MOEKIT_ERROR_INVALID_ARGUMENT, "info of NULL");
  moekit_block_free(NULL);

  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("capi_test: all checks passed\n");
  return 0;
}
