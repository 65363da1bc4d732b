"""One MoE layer of a Hugging Face checkpoint (router -> experts -> shared experts) from Python."""

from __future__ import annotations

import ctypes
import os
from typing import Any

from . import _lib, _tensor
from ._experts import _allocate_output, _stream_handle
from ._lib import BlockInfo, InvalidArgumentError

_DTYPES = {(_tensor.BFLOAT, 16): "bfloat16", (_tensor.FLOAT, 16): "float16", (_tensor.FLOAT, 32): "float32"}


def _device(device: Any) -> tuple[int, int]:
    """"cpu", "cuda", "cuda:1", a torch.device, or a (DLPack device type, id) pair."""
    if isinstance(device, tuple) and len(device) == 2:
        return int(device[0]), int(device[1])
    text = str(device)
    if text == "cpu":
        return _tensor.CPU, 0
    if text == "cuda":
        return _tensor.CUDA, 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return _tensor.CUDA, int(text[5:])
    raise InvalidArgumentError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}", "invalid_argument", 1)


class MoeBlock:
    """Layer ``layer`` (None: the first MoE layer) of the checkpoint folder ``model_dir``.

    ``forward(x)`` runs router, experts and shared experts on hidden_states [T, H] (the weights'
    dtype, on ``device``); with ``top_k_index`` and ``top_k_weights`` only the experts call on that
    routing. ``routing()`` returns the last own routing as NumPy arrays (int32, float32).
    """

    def __init__(self, model_dir: str | os.PathLike, layer: int | None = None, device: Any = "cpu"):
        lib = _lib.load()
        dev = _lib._DLDevice(*_device(device))
        handle = ctypes.c_void_p()
        _lib.raise_for(lib.moekit_block_load(os.fsencode(model_dir), -1 if layer is None else int(layer), dev,
                                             ctypes.byref(handle)))
        self._handle = handle
        info = BlockInfo()
        info.struct_size = ctypes.sizeof(BlockInfo)
        _lib.raise_for(lib.moekit_block_get_info(self._handle, ctypes.byref(info)))
        self.layer = info.layer
        self.hidden_size = info.hidden_size
        self.num_experts = info.num_experts
        self.top_k = info.top_k
        self.moe_intermediate_size = info.moe_intermediate_size
        self.dtype = _DTYPES.get((info.dtype.code, info.dtype.bits), "unknown")
        self.device = "cpu" if info.device.device_type == _tensor.CPU else f"cuda:{info.device.device_id}"
        self.model_type = info.model_type.decode()

    def close(self) -> None:
        if getattr(self, "_handle", None):
            _lib.load().moekit_block_free(self._handle)
            self._handle = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _live(self):
        if not self._handle:
            raise InvalidArgumentError("this MoeBlock is closed", "invalid_argument", 1)
        return self._handle

    def forward(self, hidden_states: Any, top_k_index: Any = None, top_k_weights: Any = None, *,
                backend: str = "grouped_mm", out: Any = None, stream: Any = None) -> Any:
        lib = _lib.load()
        handle = self._live()
        x = _tensor.describe(hidden_states, "hidden_states")
        sh = _stream_handle(stream)
        if x.device[0] == _tensor.CUDA and stream is None and _tensor.is_torch_tensor(hidden_states):
            sh = _tensor.torch_module().cuda.current_stream(hidden_states.device).cuda_stream
        if out is None:
            out = _allocate_output(hidden_states, x)
        o = _tensor.describe(out, "output", sh)
        idx = None if top_k_index is None else _tensor.describe(top_k_index, "top_k_index", sh)
        w = None if top_k_weights is None else _tensor.describe(top_k_weights, "top_k_weights", sh)
        status = lib.moekit_block_forward(handle, x.pointer(), o.pointer(), None if idx is None else idx.pointer(),
                                          None if w is None else w.pointer(), backend.encode(), sh or None)
        _lib.raise_for(status)
        if top_k_index is None:
            self._routed_tokens = int(x.dl.shape[0])
        return out

    __call__ = forward

    def routing(self):
        """(top_k_index int32 [T, K], top_k_weights float32 [T, K]) of the last own routing, NumPy."""
        import numpy as np

        lib = _lib.load()
        handle = self._live()
        t = getattr(self, "_routed_tokens", None)
        if t is None:
            raise InvalidArgumentError("MoeBlock.routing(): no forward without given routing has run yet",
                                       "invalid_argument", 1)
        idx = np.empty((t, self.top_k), dtype=np.int32)
        w = np.empty((t, self.top_k), dtype=np.float32)
        _lib.raise_for(lib.moekit_block_routing(handle, _tensor.describe(idx, "top_k_index").pointer(),
                                                _tensor.describe(w, "top_k_weights").pointer()))
        return idx, w
