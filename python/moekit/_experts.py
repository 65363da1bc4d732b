"""The experts call from Python: arrays described to the C API, the output allocated by the
caller's array library (NumPy for NumPy, torch for torch, on the input's device)."""

from __future__ import annotations

import sys
from typing import Any

from . import _lib, _tensor
from ._lib import ExpertsOptions, InvalidArgumentError

GATE_LAYOUTS = ("concatenated", "interleaved")


def _stream_handle(stream: Any) -> int:
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    for attr in ("cuda_stream", "ptr", "handle"):  # torch.cuda.Stream, CuPy streams, ...
        value = getattr(stream, attr, None)
        if isinstance(value, int):
            return value
    raise InvalidArgumentError(f"stream must be an int handle or a CUDA stream object, got {type(stream).__name__}",
                               "invalid_argument", 1)


def _allocate_output(x: Any, op: _tensor.Operand):
    """An empty [T, H]-like array of the input's kind, dtype and device."""
    if _tensor.is_torch_tensor(x):
        torch = _tensor.torch_module()
        return torch.empty(tuple(x.shape), dtype=x.dtype, device=x.device)
    if _tensor.is_numpy_array(x):
        import numpy as np
        return np.empty(x.shape, dtype=x.dtype)
    # Another DLPack producer: NumPy for host memory, torch for CUDA memory when it is present.
    shape = tuple(op.dl.shape[i] for i in range(op.dl.ndim))
    if op.device[0] in (_tensor.CPU, _tensor.CUDA_HOST):
        import numpy as np
        dtypes = {(_tensor.FLOAT, 16): np.float16, (_tensor.FLOAT, 32): np.float32, (_tensor.UINT, 16): np.uint16}
        if op.dtype() in dtypes:
            return np.empty(shape, dtype=dtypes[op.dtype()])
    elif op.device[0] == _tensor.CUDA and "torch" in sys.modules:
        torch = sys.modules["torch"]
        dtypes = {(_tensor.FLOAT, 16): torch.float16, (_tensor.FLOAT, 32): torch.float32,
                  (_tensor.BFLOAT, 16): torch.bfloat16}
        if op.dtype() in dtypes:
            return torch.empty(shape, dtype=dtypes[op.dtype()], device=f"cuda:{op.device[1]}")
    raise InvalidArgumentError(
        f"cannot allocate the output for a {type(x).__name__} hidden_states of {_tensor.dtype_name(op)} on DLPack "
        f"device type {op.device[0]}: pass out=", "invalid_argument", 1)


def run(hidden_states, top_k_index, top_k_weights, gate_up_proj, down_proj, gate_up_proj_bias, down_proj_bias,
        out, backend: str, activation: str, gate_layout: str, has_gate: bool, transposed: bool,
        swiglu_alpha: float, swiglu_limit: float, threads: int, stream: Any, uint16_as_bfloat16: bool):
    """The call itself, outside any torch.library op (which wraps this for torch.compile)."""
    lib = _lib.load()
    if gate_layout not in GATE_LAYOUTS:
        raise InvalidArgumentError(f"gate_layout must be 'concatenated' or 'interleaved', got {gate_layout!r}",
                                   "invalid_argument", 1)
    if not isinstance(backend, str) or not isinstance(activation, str):
        raise InvalidArgumentError("backend and activation are names (str)", "invalid_argument", 1)

    x = _tensor.describe(hidden_states, "hidden_states")
    handle = _stream_handle(stream)
    if x.device[0] == _tensor.CUDA and stream is None and _tensor.is_torch_tensor(hidden_states):
        # Run where torch queued the inputs' producers and will queue the output's consumers.
        handle = _tensor.torch_module().cuda.current_stream(hidden_states.device).cuda_stream

    def operand(a, name):
        return None if a is None else _tensor.describe(a, name, handle)

    ops = {
        "hidden_states": x,
        "top_k_index": operand(top_k_index, "top_k_index"),
        "top_k_weights": operand(top_k_weights, "top_k_weights"),
        "gate_up_proj": operand(gate_up_proj, "gate_up_proj"),
        "down_proj": operand(down_proj, "down_proj"),
        "gate_up_proj_bias": operand(gate_up_proj_bias, "gate_up_proj_bias"),
        "down_proj_bias": operand(down_proj_bias, "down_proj_bias"),
    }
    if out is None:
        out = _allocate_output(hidden_states, x)
    ops["output"] = _tensor.describe(out, "output", handle)
    if ops["output"].read_only:
        raise InvalidArgumentError("output is read-only", "invalid_argument", 1)
    if uint16_as_bfloat16:
        for name in ("hidden_states", "top_k_weights", "gate_up_proj", "down_proj", "gate_up_proj_bias",
                     "down_proj_bias", "output"):
            if ops[name] is not None:
                ops[name].as_bfloat16_if_uint16()

    options = ExpertsOptions()
    lib.moekit_experts_options_init(options)
    options.activation = activation.encode()
    options.interleaved = int(gate_layout == "interleaved")
    options.has_gate = int(bool(has_gate))
    options.transposed = int(bool(transposed))
    options.swiglu_alpha = float(swiglu_alpha)
    options.swiglu_limit = float(swiglu_limit)
    options.threads = int(threads)

    args = [None if ops[n] is None else ops[n].pointer() for n in
            ("hidden_states", "top_k_index", "top_k_weights", "gate_up_proj", "down_proj", "gate_up_proj_bias",
             "down_proj_bias", "output")]
    status = lib.moekit_experts(*args, options, backend.encode(), handle or None)
    _lib.raise_for(status)
    return out
