"""Describing arrays to the C API as DLTensors, without copying them.

PyTorch tensors and NumPy arrays are described from their own metadata (pointer, shape, strides,
dtype): that needs no capsule, works for read-only arrays and for tensors that require grad, and has
no stream handshake. Any other array goes through the DLPack protocol (``__dlpack__``).
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from ._lib import DLManagedTensor, DLManagedTensorVersioned, DLTensor, InvalidArgumentError

# DLPack device types and type codes (moekit/dlpack.h).
CPU, CUDA, CUDA_HOST = 1, 2, 3
INT, UINT, FLOAT, BFLOAT, COMPLEX, BOOL = 0, 1, 2, 4, 5, 6

_DTYPE_NAMES = {(FLOAT, 16): "float16", (FLOAT, 32): "float32", (FLOAT, 64): "float64", (BFLOAT, 16): "bfloat16",
                (INT, 32): "int32", (INT, 64): "int64", (UINT, 16): "uint16"}


class Operand:
    """A DLTensor describing one argument, and what must stay alive while the library reads it."""

    __slots__ = ("dl", "keep", "device", "read_only")

    def __init__(self, dl: DLTensor, keep: Any, read_only: bool = False):
        self.dl = dl
        self.keep = keep
        self.device = (int(dl.device.device_type), int(dl.device.device_id))
        self.read_only = read_only

    def dtype(self) -> tuple[int, int]:
        return int(self.dl.dtype.code), int(self.dl.dtype.bits)

    def as_bfloat16_if_uint16(self) -> None:
        if self.dtype() == (UINT, 16):
            self.dl.dtype.code = BFLOAT

    def pointer(self):
        return ctypes.pointer(self.dl)


def torch_module():
    """torch when it is already imported (moekit never imports it for NumPy users)."""
    return sys.modules.get("torch")


def is_torch_tensor(x: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def is_numpy_array(x: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.ndarray)


def _fill(dl: DLTensor, data: int, device: tuple[int, int], code: int, bits: int, shape, strides) -> list:
    ndim = len(shape)
    shape_arr = (ctypes.c_int64 * max(ndim, 1))(*shape)
    strides_arr = (ctypes.c_int64 * max(ndim, 1))(*strides)
    dl.data = data or None
    dl.device.device_type, dl.device.device_id = device
    dl.ndim = ndim
    dl.dtype.code, dl.dtype.bits, dl.dtype.lanes = code, bits, 1
    dl.shape = ctypes.cast(shape_arr, ctypes.POINTER(ctypes.c_int64))
    dl.strides = ctypes.cast(strides_arr, ctypes.POINTER(ctypes.c_int64))
    dl.byte_offset = 0
    return [shape_arr, strides_arr]


def _torch_dtype(t, name: str) -> tuple[int, int]:
    torch = torch_module()
    table = {torch.float32: (FLOAT, 32), torch.float16: (FLOAT, 16), torch.bfloat16: (BFLOAT, 16),
             torch.float64: (FLOAT, 64), torch.int32: (INT, 32), torch.int64: (INT, 64),
             torch.int16: (INT, 16), torch.int8: (INT, 8), torch.uint8: (UINT, 8), torch.bool: (BOOL, 8)}
    if getattr(torch, "uint16", None) is not None:
        table[torch.uint16] = (UINT, 16)
    if t.dtype not in table:
        raise InvalidArgumentError(f"{name} has dtype {t.dtype}; moekit takes bfloat16, float16, float32, int32 "
                                   "and int64 tensors", "invalid_argument", 1)
    return table[t.dtype]


def from_torch(t, name: str) -> Operand:
    if t.device.type == "cpu":
        device = (CPU, 0)
    elif t.device.type == "cuda":
        device = (CUDA, t.device.index if t.device.index is not None else 0)
    else:
        raise InvalidArgumentError(f"{name} is on {t.device}; moekit takes cpu and cuda tensors",
                                   "invalid_argument", 1)
    code, bits = _torch_dtype(t, name)
    dl = DLTensor()
    keep = _fill(dl, t.data_ptr(), device, code, bits, tuple(t.shape), tuple(t.stride()))
    keep.append(t)
    return Operand(dl, keep)


def from_array_interface(a, name: str) -> Operand:
    ai = a.__array_interface__
    typestr: str = ai["typestr"]
    if typestr[0] == ">" and sys.byteorder == "little" or typestr[0] == "<" and sys.byteorder == "big":
        raise InvalidArgumentError(f"{name} is in non-native byte order ({typestr}); moekit takes native arrays",
                                   "invalid_argument", 1)
    kind, itemsize = typestr[1], int(typestr[2:])
    dtype_name = str(getattr(getattr(a, "dtype", None), "name", typestr))
    if dtype_name == "bfloat16" and itemsize == 2:  # ml_dtypes' bfloat16 (a void type to NumPy)
        code = BFLOAT
    else:
        codes = {"f": FLOAT, "i": INT, "u": UINT, "b": BOOL, "c": COMPLEX}
        if kind not in codes:
            raise InvalidArgumentError(f"{name} has dtype {dtype_name}; moekit takes bfloat16, float16, float32, "
                                       "int32 and int64 arrays", "invalid_argument", 1)
        code = codes[kind]
    shape = tuple(int(s) for s in ai["shape"])
    if ai.get("strides") is None:
        strides, step = [], 1
        for s in reversed(shape):
            strides.append(step)
            step *= s
        strides = tuple(reversed(strides))
    else:
        byte_strides = tuple(int(s) for s in ai["strides"])
        if any(s % itemsize for s in byte_strides):
            raise InvalidArgumentError(f"{name} has byte strides {byte_strides} that are not multiples of its "
                                       f"{itemsize}-byte elements", "invalid_argument", 1)
        strides = tuple(s // itemsize for s in byte_strides)
    data, read_only = ai["data"]
    dl = DLTensor()
    keep = _fill(dl, int(data or 0), (CPU, 0), code, 8 * itemsize, shape, strides)
    keep.append(a)
    return Operand(dl, keep, bool(read_only))


_capsule_api = None


def _capsule():
    global _capsule_api
    if _capsule_api is None:
        api = ctypes.pythonapi
        api.PyCapsule_GetName.argtypes = [ctypes.py_object]
        api.PyCapsule_GetName.restype = ctypes.c_char_p
        api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        api.PyCapsule_GetPointer.restype = ctypes.c_void_p
        _capsule_api = api
    return _capsule_api


def from_dlpack(x, name: str, stream: int | None) -> Operand:
    """Any object with __dlpack__: the capsule stays alive (and unconsumed, so its own destructor
    releases the tensor) for as long as the Operand does."""
    device = tuple(int(v) for v in x.__dlpack_device__())
    # The consumer's stream, for the producer to order its work before ours (1: the legacy default).
    kwargs = {"stream": (stream or 1) if device[0] == CUDA else None}
    try:
        capsule = x.__dlpack__(max_version=(1, 0), **kwargs)
    except TypeError:  # producers older than DLPack 1.0 take no max_version
        capsule = x.__dlpack__(**kwargs)
    api = _capsule()
    cname = api.PyCapsule_GetName(capsule)
    read_only = False
    if cname == b"dltensor_versioned":
        managed = DLManagedTensorVersioned.from_address(api.PyCapsule_GetPointer(capsule, cname))
        if managed.version.major != 1:
            raise InvalidArgumentError(f"{name} is a DLPack {managed.version.major}.{managed.version.minor} tensor; "
                                       "moekit reads DLPack 1.x", "invalid_argument", 1)
        read_only = bool(managed.flags & 1)
    elif cname == b"dltensor":
        managed = DLManagedTensor.from_address(api.PyCapsule_GetPointer(capsule, cname))
    else:
        raise InvalidArgumentError(f"{name}.__dlpack__() returned a capsule named {cname!r}, not a DLPack tensor",
                                   "invalid_argument", 1)
    dl = DLTensor()
    ctypes.pointer(dl)[0] = managed.dl_tensor  # a copy of the struct; shape and strides stay the capsule's
    return Operand(dl, [capsule, x], read_only)


def describe(x, name: str, stream: int | None = None) -> Operand:
    if is_torch_tensor(x):
        return from_torch(x, name)
    if is_numpy_array(x) or (hasattr(x, "__array_interface__") and not hasattr(x, "__dlpack__")):
        return from_array_interface(x, name)
    if hasattr(x, "__dlpack__"):
        return from_dlpack(x, name, stream)
    raise InvalidArgumentError(f"{name} is a {type(x).__name__}, which is neither a DLPack-capable array nor a "
                               "NumPy array", "invalid_argument", 1)


def dtype_name(op: Operand) -> str:
    return _DTYPE_NAMES.get(op.dtype(), f"type code {op.dtype()[0]}/{op.dtype()[1]} bits")
