"""moekit: the expert feed-forward part of mixture-of-experts layers, as transformers computes it.

    out = moekit.experts(hidden_states, top_k_index, top_k_weights, gate_up_proj, down_proj,
                         backend="grouped_mm")

takes NumPy arrays, torch tensors (CPU or CUDA) or any DLPack-capable arrays and returns an array of
the input's kind. ``moekit.transformers.register()`` makes the backends available to transformers as
``experts_implementation="moekit_grouped_mm"`` (and ``moekit_eager``, ``moekit_batched_mm``,
``moekit_fused``, ``moekit_auto``). docs/python.md has the details.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _experts, _lib, _tensor
from ._block import MoeBlock
from ._lib import (BackendNotFoundError, InvalidArgumentError, MoekitError, NotFoundError, UnsupportedError,
                   library_path)

__all__ = [
    "experts", "MoeBlock", "backends", "version", "library_path",
    "MoekitError", "InvalidArgumentError", "UnsupportedError", "NotFoundError", "BackendNotFoundError",
]
__version__ = "0.1.0"


# torch.ops.moekit.experts once registered (False: this torch has no torch.library.custom_op). A
# module global, so that torch.compile reads it instead of tracing an import.
_torch_experts_op = None


def _load_torch_op():
    global _torch_experts_op
    from . import _torch_op

    _torch_experts_op = _torch_op.experts_op if _torch_op.experts_op is not None else False
    return _torch_experts_op


if "torch" in sys.modules:  # torch users: register the op now, before anything is compiled
    _load_torch_op()


def experts(hidden_states: Any, top_k_index: Any, top_k_weights: Any, gate_up_proj: Any, down_proj: Any, *,
            gate_up_proj_bias: Any = None, down_proj_bias: Any = None, backend: str = "grouped_mm",
            activation: str = "silu", gate_layout: str = "concatenated", has_gate: bool = True,
            transposed: bool = False, swiglu_alpha: float = 1.702, swiglu_limit: float = 7.0, threads: int = 0,
            out: Any = None, stream: Any = None, uint16_as_bfloat16: bool = False) -> Any:
    """out[t] = sum_k w[t,k] * (down[e] @ gate(gate_up[e] @ x[t] + b1[e]) + b2[e]), e = top_k_index[t,k] < E.

    hidden_states [T, H] bf16/f16/f32; top_k_index [T, K] int32/int64 (ids >= E contribute nothing,
    negative ids are errors); top_k_weights [T, K] f32 or the hidden dtype; gate_up_proj [E, 2I, H]
    and down_proj [E, H, I] (``transposed=True``: [E, H, 2I] and [E, I, H]; ``has_gate=False``:
    up_proj with I rows). Biases [E, 2I] and [E, H] come together or not at all.

    backend: "eager", "batched_mm", "grouped_mm" or any other the library has ("fused", "auto" once
    they exist). activation: "silu", "gelu", "gelu_tanh", "relu" or "clamped_swiglu" (gpt-oss, with
    ``swiglu_alpha``/``swiglu_limit``). gate_layout: "concatenated" (gate rows first) or
    "interleaved" (gpt-oss). threads: CPU threads (0 = all).

    Returns ``out`` when given, else a new array of the input's kind (NumPy for NumPy; torch, on the
    same device, for torch). CUDA tensors run on ``stream`` (an int handle or a stream object),
    by default torch's current stream of their device. NumPy has no bfloat16: with
    ``uint16_as_bfloat16=True`` uint16 arrays are read (and the output written) as bfloat16 bits.

    Raises InvalidArgumentError, UnsupportedError or BackendNotFoundError (all MoekitError) with the
    library's message; never falls back to another backend.
    """
    if (out is None and stream is None and not uint16_as_bfloat16 and _tensor.is_torch_tensor(hidden_states)):
        op = _torch_experts_op if _torch_experts_op is not None else _load_torch_op()
        if op:
            # Through the custom op, so that torch.compile keeps the call as one opaque node.
            return op(hidden_states, top_k_index, top_k_weights, gate_up_proj, down_proj, gate_up_proj_bias,
                      down_proj_bias, backend, activation, gate_layout, bool(has_gate), bool(transposed),
                      float(swiglu_alpha), float(swiglu_limit), int(threads))
    return _experts.run(hidden_states, top_k_index, top_k_weights, gate_up_proj, down_proj, gate_up_proj_bias,
                        down_proj_bias, out, backend, activation, gate_layout, has_gate, transposed, swiglu_alpha,
                        swiglu_limit, threads, stream, uint16_as_bfloat16)


def backends() -> list[dict]:
    """The library's backends: [{"name", "device", "available", "reason"}]."""
    import ctypes

    lib = _lib.load()
    length = ctypes.c_size_t(0)
    _lib.raise_for(lib.moekit_backends(None, 0, ctypes.byref(length)))
    buf = ctypes.create_string_buffer(length.value + 1)
    _lib.raise_for(lib.moekit_backends(buf, len(buf), ctypes.byref(length)))
    rows = []
    for line in buf.value.decode().splitlines():
        name, device, state = line.split("\t", 2)
        rows.append({"name": name, "device": device, "available": state == "available",
                     "reason": "" if state == "available" else state.partition(": ")[2]})
    return rows


def version() -> str:
    """The loaded library's version."""
    return _lib.load().moekit_version().decode()
