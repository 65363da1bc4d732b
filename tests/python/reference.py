"""A float64 NumPy oracle of the experts call (docs/semantics.md), and random inputs for it."""

import math

import numpy as np


def bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (round to nearest even), as uint16."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def bf16_to_f64(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def as_f64(a, bf16: bool) -> np.ndarray:
    return bf16_to_f64(a) if bf16 and a.dtype == np.uint16 else np.asarray(a, dtype=np.float64)


_erf = np.vectorize(math.erf)


def act(v: np.ndarray, name: str) -> np.ndarray:
    if name == "silu":
        return v / (1.0 + np.exp(-v))
    if name == "gelu":
        return 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)))
    if name == "relu":
        return np.maximum(v, 0.0)
    raise ValueError(name)


def reference(x, idx, w, gate_up, down, b1=None, b2=None, *, activation="silu", gate_layout="concatenated",
              has_gate=True, transposed=False, alpha=1.702, limit=7.0, bf16=False) -> np.ndarray:
    x, w, gate_up, down = (as_f64(a, bf16) for a in (x, w, gate_up, down))
    b1 = None if b1 is None else as_f64(b1, bf16)
    b2 = None if b2 is None else as_f64(b2, bf16)
    T, H = x.shape
    E = gate_up.shape[0]
    out = np.zeros((T, H))
    for t in range(T):
        for k in range(idx.shape[1]):
            e = int(idx[t, k])
            if e >= E:
                continue
            w1 = gate_up[e].T if transposed else gate_up[e]  # [rows, H]
            v = w1 @ x[t] + (0.0 if b1 is None else b1[e])
            if has_gate:
                rows = v.shape[0] // 2
                g, u = (v[0::2], v[1::2]) if gate_layout == "interleaved" else (v[:rows], v[rows:])
                if activation == "clamped_swiglu":
                    g = np.minimum(g, limit)
                    u = np.clip(u, -limit, limit)
                    h = (u + 1.0) * g / (1.0 + np.exp(-alpha * g))
                else:
                    h = act(g, activation) * u
            else:
                h = act(v, activation)
            w2 = down[e].T if transposed else down[e]  # [H, I]
            y = w2 @ h + (0.0 if b2 is None else b2[e])
            out[t] += w[t, k] * y
    return out


def rel_error(out, ref, bf16=False) -> float:
    o = as_f64(out, bf16)
    if not np.all(np.isfinite(o)):
        return math.inf
    return float(np.max(np.abs(o - ref)) / max(np.max(np.abs(ref)), 1e-30)) if ref.size else 0.0


TOLERANCE = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1e-2}


def make_inputs(rng, *, T=5, H=32, I=16, E=4, K=2, dtype="float32", transposed=False, has_gate=True, bias=False,
                index_dtype=np.int64, weights_dtype=None, sentinels=False):
    """Random inputs in `dtype` ("float32", "float16" or "bfloat16" as uint16 bits)."""
    rows = 2 * I if has_gate else I

    def arr(*shape, scale=1.0):
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        if dtype == "bfloat16":
            return bf16_bits(a)
        return a.astype(dtype)

    x = arr(T, H)
    gate_up = arr(E, H, rows, scale=H ** -0.5) if transposed else arr(E, rows, H, scale=H ** -0.5)
    down = arr(E, I, H, scale=I ** -0.5) if transposed else arr(E, H, I, scale=I ** -0.5)
    idx = np.array([rng.permutation(E)[:K] for _ in range(T)], dtype=index_dtype).reshape(T, K)
    if sentinels:
        idx[0, -1] = E          # one sentinel
        if T > 1:
            idx[1, :] = E + 3   # a token of sentinels only: exact zeros
    w = rng.random((T, K)).astype(np.float32)
    if weights_dtype is not None:
        w = bf16_bits(w) if weights_dtype == "bfloat16" else w.astype(weights_dtype)
    inputs = dict(hidden_states=x, top_k_index=idx, top_k_weights=w, gate_up_proj=gate_up, down_proj=down)
    if bias:
        inputs["gate_up_proj_bias"] = arr(E, rows, scale=0.1)
        inputs["down_proj_bias"] = arr(E, H, scale=0.1)
    return inputs
