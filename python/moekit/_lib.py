"""Finding and loading libmoekit.so, and the ctypes declarations of its C API (moekit/moekit.h)."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path

ABI_VERSION = 1  # MOEKIT_ABI_VERSION of the header these declarations mirror

_LIBRARY_NAMES = {"darwin": "libmoekit.dylib", "win32": "moekit.dll"}
LIBRARY_NAME = _LIBRARY_NAMES.get(sys.platform, "libmoekit.so")


class MoekitError(RuntimeError):
    """A failed moekit call. ``code`` is the library's status name ("invalid_argument", ...)."""

    def __init__(self, message: str, code: str = "internal", status: int = 6):
        super().__init__(message)
        self.code = code
        self.status = status


class InvalidArgumentError(MoekitError, ValueError):
    """Bad shape, dtype, stride, id or option."""


class UnsupportedError(MoekitError):
    """A valid call that this backend, device or build cannot run."""


class NotFoundError(MoekitError, LookupError):
    """Something named does not exist: a backend for the tensors' device, a checkpoint's tensor or file."""


BackendNotFoundError = NotFoundError  # the name callers of moekit.experts know it by

_ERRORS = {1: InvalidArgumentError, 2: UnsupportedError, 3: NotFoundError}


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class _DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("version", _DLPackVersion),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", DLTensor),
    ]


class ExpertsOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("activation", ctypes.c_char_p),
        ("interleaved", ctypes.c_int32),
        ("has_gate", ctypes.c_int32),
        ("transposed", ctypes.c_int32),
        ("swiglu_alpha", ctypes.c_float),
        ("swiglu_limit", ctypes.c_float),
        ("threads", ctypes.c_int32),
    ]


class BlockInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("layer", ctypes.c_int32),
        ("hidden_size", ctypes.c_int64),
        ("num_experts", ctypes.c_int64),
        ("top_k", ctypes.c_int64),
        ("moe_intermediate_size", ctypes.c_int64),
        ("dtype", _DLDataType),
        ("device", _DLDevice),
        ("model_type", ctypes.c_char * 32),
    ]


def candidate_paths() -> list[Path]:
    """Where the library is looked for, in order (MOEKIT_LIBRARY is handled before these)."""
    here = Path(__file__).resolve().parent
    return [
        here / LIBRARY_NAME,                       # installed next to the package
        here.parent.parent / "build" / LIBRARY_NAME,  # python/moekit in a source tree built into build/
    ]


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_path: Path | None = None


def _declare(lib: ctypes.CDLL) -> None:
    ptr = ctypes.POINTER(DLTensor)
    lib.moekit_experts.argtypes = [ptr] * 8 + [ctypes.POINTER(ExpertsOptions), ctypes.c_char_p, ctypes.c_void_p]
    lib.moekit_experts.restype = ctypes.c_int
    lib.moekit_experts_options_init.argtypes = [ctypes.POINTER(ExpertsOptions)]
    lib.moekit_experts_options_init.restype = None
    lib.moekit_last_error.argtypes = []
    lib.moekit_last_error.restype = ctypes.c_char_p
    lib.moekit_status_name.argtypes = [ctypes.c_int]
    lib.moekit_status_name.restype = ctypes.c_char_p
    lib.moekit_backends.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    lib.moekit_backends.restype = ctypes.c_int
    lib.moekit_abi_version.argtypes = []
    lib.moekit_abi_version.restype = ctypes.c_int
    lib.moekit_version.argtypes = []
    lib.moekit_version.restype = ctypes.c_char_p
    lib.moekit_block_load.argtypes = [ctypes.c_char_p, ctypes.c_int, _DLDevice, ctypes.POINTER(ctypes.c_void_p)]
    lib.moekit_block_load.restype = ctypes.c_int
    lib.moekit_block_free.argtypes = [ctypes.c_void_p]
    lib.moekit_block_free.restype = None
    lib.moekit_block_get_info.argtypes = [ctypes.c_void_p, ctypes.POINTER(BlockInfo)]
    lib.moekit_block_get_info.restype = ctypes.c_int
    lib.moekit_block_forward.argtypes = [ctypes.c_void_p] + [ptr] * 4 + [ctypes.c_char_p, ctypes.c_void_p]
    lib.moekit_block_forward.restype = ctypes.c_int
    lib.moekit_block_routing.argtypes = [ctypes.c_void_p, ptr, ptr]
    lib.moekit_block_routing.restype = ctypes.c_int


def load() -> ctypes.CDLL:
    """The loaded library (loaded once): MOEKIT_LIBRARY, else next to the package, else build/."""
    global _lib, _path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        env = os.environ.get("MOEKIT_LIBRARY")
        if env:
            path = Path(env)
            if not path.is_file():
                raise MoekitError(f"MOEKIT_LIBRARY={env} is not a file", "not_found", 3)
        else:
            tried = candidate_paths()
            path = next((p for p in tried if p.is_file()), None)
            if path is None:
                raise MoekitError(
                    f"cannot find {LIBRARY_NAME}: build it (cmake --build build --target moekit_shared) and set "
                    f"MOEKIT_LIBRARY to its path, or copy it next to the package; looked in: "
                    + ", ".join(str(p) for p in tried),
                    "not_found",
                    3,
                )
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise MoekitError(f"cannot load {path}: {e}", "internal", 6) from e
        if not hasattr(lib, "moekit_experts"):
            raise MoekitError(f"{path} has no moekit C API (moekit_experts): is it an older libmoekit?", "internal", 6)
        _declare(lib)
        abi = lib.moekit_abi_version()
        if abi != ABI_VERSION:
            raise MoekitError(
                f"{path} has C ABI version {abi}, this Python package needs {ABI_VERSION}: use matching versions",
                "internal",
                6,
            )
        _lib, _path = lib, path
        return lib


def library_path() -> Path:
    """The path of the loaded library."""
    load()
    assert _path is not None
    return _path


def raise_for(status: int) -> None:
    """Raises the exception of a failed call, carrying the library's message."""
    if status == 0:
        return
    lib = load()
    message = (lib.moekit_last_error() or b"").decode("utf-8", "replace")
    code = (lib.moekit_status_name(status) or b"unknown").decode()
    raise _ERRORS.get(status, MoekitError)(message, code, status)
