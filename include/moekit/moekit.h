/* moekit C API: the experts call over DLPack tensors, for C and for foreign-function interfaces
 * (the Python package binds it with ctypes), and the MoE block of a checkpoint layer.
 *
 * Every function that can fail returns a moekit_status; MOEKIT_OK is 0. On failure,
 * moekit_last_error() returns a message naming the problem (the offending tensor, the valid names,
 * ...). It is kept per thread until that thread's next failing call. No function throws, aborts or
 * falls back to another backend.
 *
 * Tensors are borrowed for the duration of the call; moekit never keeps a pointer to them and never
 * calls a DLManagedTensor's deleter. Strides are honoured as far as the experts call allows them:
 * hidden_states, output, top_k_index and top_k_weights may have padded rows (a row stride larger
 * than the row, unit stride along a row); weights and biases must be contiguous. Any other layout is
 * refused with MOEKIT_ERROR_INVALID_ARGUMENT, never copied behind the caller's back.
 *
 *   out[t] = sum_k w[t,k] * ( down[e] @ gate( gate_up[e] @ x[t] + b1[e] ) + b2[e] ),  e = idx[t,k] < E
 *
 * (docs/semantics.md has the full definition.)
 */
#ifndef MOEKIT_MOEKIT_H_
#define MOEKIT_MOEKIT_H_

#include <stddef.h>
#include <stdint.h>

#include "moekit/dlpack.h"

#if defined(_WIN32)
#define MOEKIT_API __declspec(dllexport)
#else
#define MOEKIT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a declaration of this header changes incompatibly. */
#define MOEKIT_ABI_VERSION 1

typedef enum moekit_status {
  MOEKIT_OK = 0,
  MOEKIT_ERROR_INVALID_ARGUMENT = 1, /* bad shape, dtype, stride, id, option or pointer */
  MOEKIT_ERROR_UNSUPPORTED = 2,      /* a valid call this backend or build cannot run */
  MOEKIT_ERROR_NOT_FOUND = 3,        /* unknown backend name */
  MOEKIT_ERROR_OUT_OF_MEMORY = 4,    /* an allocation failed */
  MOEKIT_ERROR_DEVICE = 5,           /* a device runtime (CUDA) failure */
  MOEKIT_ERROR_INTERNAL = 6          /* anything else; the message says what */
} moekit_status;

/* How the experts compute, beyond what the tensors' shapes say. Fill it with
 * moekit_experts_options_init() and change what differs: the defaults are transformers' usual
 * experts (concatenated gate/up, silu, weights [E, 2I, H] and [E, H, I]). */
typedef struct moekit_experts_options {
  uint32_t struct_size;   /* sizeof(moekit_experts_options); set by moekit_experts_options_init */
  const char* activation; /* "silu" (NULL means silu), "gelu", "gelu_tanh", "relu", "clamped_swiglu" */
  int32_t interleaved;    /* nonzero: gate = rows 0::2 and up = rows 1::2 (gpt-oss); else gate = first I rows */
  int32_t has_gate;       /* zero: gate_up_proj is up_proj [E, I, H] and the MLP is act(up @ x + b1) */
  int32_t transposed;     /* nonzero: gate_up_proj [E, H, 2I] and down_proj [E, I, H] */
  float swiglu_alpha;     /* clamped_swiglu's alpha (1.702) */
  float swiglu_limit;     /* clamped_swiglu's limit (7.0) */
  int32_t threads;        /* CPU worker threads for this call; 0 = all hardware threads */
} moekit_experts_options;

MOEKIT_API void moekit_experts_options_init(moekit_experts_options* options);

/* The experts call: writes output [T, H] (the dtype of hidden_states).
 *
 *   hidden_states [T, H] bf16, f16 or f32          top_k_index [T, K] int32 or int64
 *   top_k_weights [T, K] f32 or the hidden dtype   output [T, H], not overlapping any input
 *   gate_up_proj  [E, 2I, H] ([E, H, 2I] transposed; [E, I, H] / [E, H, I] without a gate)
 *   down_proj     [E, H, I]  ([E, I, H] transposed)
 *   gate_up_proj_bias [E, 2I] and down_proj_bias [E, H]: both NULL or both given
 *
 * Ids >= E are expert-parallel sentinels and contribute nothing; a negative id is an error (checked
 * up front for host tensors). All tensors must be on one device: DLPack kDLCPU or kDLCUDAHost
 * (host memory), or kDLCUDA. backend: "eager", "batched_mm", "grouped_mm" (NULL means grouped_mm),
 * or any other backend the library registers. stream: the cudaStream_t to run on for CUDA tensors
 * (NULL = the legacy default stream); ignored on the CPU. CUDA calls are asynchronous with respect
 * to the host, like any work queued on that stream (eager synchronises with it to read the ids). */
MOEKIT_API int moekit_experts(const DLTensor* hidden_states, const DLTensor* top_k_index,
                              const DLTensor* top_k_weights, const DLTensor* gate_up_proj,
                              const DLTensor* down_proj, const DLTensor* gate_up_proj_bias,
                              const DLTensor* down_proj_bias, const DLTensor* output,
                              const moekit_experts_options* options, const char* backend, void* stream);

/* ---- The MoE block: router -> experts -> shared expert(s) of one checkpoint layer ------------ */

/* One MoE layer of a Hugging Face checkpoint, with its buffers; opaque. One thread and one stream
 * at a time per block (its scratch is reused from call to call). */
typedef struct moekit_block moekit_block;

/* Loads layer `layer` (-1: the first MoE layer) of the checkpoint folder `model_dir` (config.json
 * and *.safetensors, sharded or not), reading only that layer's tensors, and uploads it to `device`
 * (kDLCPU, or kDLCUDA with its device id). On success *block owns the layer; free it with
 * moekit_block_free. Fails with a message for a missing or corrupt file, an unknown model_type, a
 * layer out of range or dense, or a missing tensor. */
MOEKIT_API int moekit_block_load(const char* model_dir, int layer, DLDevice device, moekit_block** block);

MOEKIT_API void moekit_block_free(moekit_block* block); /* NULL is ignored */

typedef struct moekit_block_info {
  uint32_t struct_size;          /* sizeof(moekit_block_info); the caller sets it */
  int32_t layer;                 /* the layer loaded */
  int64_t hidden_size;           /* H */
  int64_t num_experts;           /* E */
  int64_t top_k;                 /* K */
  int64_t moe_intermediate_size; /* I of one routed expert */
  DLDataType dtype;              /* of the weights: hidden_states and output must have it */
  DLDevice device;               /* where forward's tensors must be */
  char model_type[32];           /* config.json's model_type, NUL-terminated */
} moekit_block_info;

MOEKIT_API int moekit_block_get_info(const moekit_block* block, moekit_block_info* info);

/* output [T, H] = the whole block on hidden_states [T, H] (contiguous, the weights' dtype, on the
 * block's device). With top_k_index and top_k_weights (both given, [T, K'] as in moekit_experts),
 * router and shared experts are skipped: output is the experts call on that routing. backend as in
 * moekit_experts. CUDA: queued on `stream`, no synchronisation (except the eager backend). */
MOEKIT_API int moekit_block_forward(moekit_block* block, const DLTensor* hidden_states, const DLTensor* output,
                                    const DLTensor* top_k_index, const DLTensor* top_k_weights,
                                    const char* backend, void* stream);

/* The routing the last moekit_block_forward without given routing chose, copied to host tensors:
 * top_k_index [T, K] int32 and top_k_weights [T, K] float32 (kDLCPU, contiguous). Synchronises the
 * block's device. Fails when there is no such forward yet or the shapes differ. */
MOEKIT_API int moekit_block_routing(const moekit_block* block, const DLTensor* top_k_index,
                                    const DLTensor* top_k_weights);

/* The message of this thread's last failing call ("" before any). Valid until the next moekit call
 * on this thread. */
MOEKIT_API const char* moekit_last_error(void);

/* "invalid_argument", "unsupported", ... for a moekit_status; "unknown" otherwise. */
MOEKIT_API const char* moekit_status_name(int status);

/* Every registered backend, one per line: "name<TAB>device<TAB>available" or
 * "name<TAB>device<TAB>unavailable: reason". Writes at most capacity bytes including the
 * terminating NUL into buffer (which may be NULL when capacity is 0) and stores the full length
 * (without the NUL) in *length, so a caller can size its buffer with a first call. */
MOEKIT_API int moekit_backends(char* buffer, size_t capacity, size_t* length);

MOEKIT_API int moekit_abi_version(void);    /* MOEKIT_ABI_VERSION of the library */
MOEKIT_API const char* moekit_version(void); /* "0.1.0" */

#ifdef __cplusplus
}
#endif

#endif /* MOEKIT_MOEKIT_H_ */
