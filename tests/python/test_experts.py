"""moekit.experts from NumPy (and torch on the CPU where it is installed) against a float64 oracle."""

import os
import subprocess
import sys

import numpy as np
import pytest

import moekit
from reference import TOLERANCE, make_inputs, reference, rel_error

BACKENDS = ["eager", "batched_mm", "grouped_mm"]


def run_and_check(inputs, dtype, backend, **options):
    bf16 = dtype == "bfloat16"
    out = moekit.experts(**inputs, backend=backend, uint16_as_bfloat16=bf16, **options)
    ref_options = {k: v for k, v in options.items() if k in ("activation", "gate_layout", "has_gate", "transposed")}
    if "swiglu_alpha" in options:
        ref_options["alpha"] = options["swiglu_alpha"]
    if "swiglu_limit" in options:
        ref_options["limit"] = options["swiglu_limit"]
    ref = reference(*(inputs[k] for k in ("hidden_states", "top_k_index", "top_k_weights", "gate_up_proj",
                                          "down_proj")),
                    inputs.get("gate_up_proj_bias"), inputs.get("down_proj_bias"), bf16=bf16, **ref_options)
    assert isinstance(out, np.ndarray)
    assert out.shape == inputs["hidden_states"].shape
    assert out.dtype == inputs["hidden_states"].dtype
    err = rel_error(out, ref, bf16)
    assert err <= TOLERANCE[dtype], f"{backend} {dtype}: relative error {err:.3g} > {TOLERANCE[dtype]}"
    return out, ref


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_default_layout(backend, dtype):
    rng = np.random.default_rng(1)
    run_and_check(make_inputs(rng, dtype=dtype), dtype, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu"])
def test_activations(backend, activation):
    rng = np.random.default_rng(2)
    run_and_check(make_inputs(rng, T=7, H=24, I=8, E=5, K=3), "float32", backend, activation=activation)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gpt_oss_layout(backend, dtype):
    """Transposed, interleaved gate/up, biases and the clamped swiglu (with non-default constants)."""
    rng = np.random.default_rng(3)
    inputs = make_inputs(rng, T=6, H=32, I=16, E=4, K=2, dtype=dtype, transposed=True, bias=True)
    run_and_check(inputs, dtype, backend, activation="clamped_swiglu", gate_layout="interleaved", transposed=True,
                  swiglu_alpha=1.5, swiglu_limit=0.75)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_gate(backend):
    rng = np.random.default_rng(4)
    inputs = make_inputs(rng, has_gate=False, bias=True)
    run_and_check(inputs, "float32", backend, activation="relu", has_gate=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sentinels(backend, index_dtype):
    rng = np.random.default_rng(5)
    inputs = make_inputs(rng, T=4, index_dtype=index_dtype, sentinels=True)
    out, _ = run_and_check(inputs, "float32", backend)
    assert np.all(out[1] == 0.0), "a token whose ids are all sentinels gets exact zeros"


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_activations_with_float32_or_half_weights(backend):
    rng = np.random.default_rng(6)
    for weights_dtype in (np.float32, np.float16):
        run_and_check(make_inputs(rng, dtype="float16", weights_dtype=weights_dtype), "float16", backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_padded_rows_in_and_out(backend):
    """Row strides are honoured: a slice of wider arrays in, a slice of a wider array out."""
    rng = np.random.default_rng(7)
    inputs = make_inputs(rng, T=5, H=32)
    wide = np.full((5, 48), np.nan, dtype=np.float32)
    wide[:, :32] = inputs["hidden_states"]
    ids_wide = np.full((5, 4), -1, dtype=np.int64)
    ids_wide[:, :2] = inputs["top_k_index"]
    strided = dict(inputs, hidden_states=wide[:, :32], top_k_index=ids_wide[:, :2])
    out_wide = np.full((5, 40), 7.0, dtype=np.float32)
    got = moekit.experts(**strided, backend=backend, out=out_wide[:, :32])
    assert got.base is out_wide
    ref = reference(*(inputs[k] for k in ("hidden_states", "top_k_index", "top_k_weights", "gate_up_proj",
                                          "down_proj")))
    assert rel_error(out_wide[:, :32], ref) <= TOLERANCE["float32"]
    assert np.all(out_wide[:, 32:] == 7.0), "the output's padding is left alone"


def test_bitwise_deterministic_across_thread_counts():
    rng = np.random.default_rng(8)
    inputs = make_inputs(rng, T=33, H=64, I=32, E=8, K=3)
    outs = [moekit.experts(**inputs, backend="grouped_mm", threads=t) for t in (1, 2, 3, 0)]
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])


def test_read_only_inputs_are_fine():
    rng = np.random.default_rng(9)
    inputs = make_inputs(rng)
    for a in inputs.values():
        a.setflags(write=False)
    run_and_check(inputs, "float32", "grouped_mm")


def test_zero_tokens():
    rng = np.random.default_rng(10)
    inputs = make_inputs(rng, T=0)
    out = moekit.experts(**inputs)
    assert out.shape == (0, 32)


class DLPackOnly:
    """An array known only through the DLPack protocol (as from a library moekit knows nothing of)."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kwargs):
        # NumPy before 2.1 takes no max_version and raises TypeError: moekit then asks again without.
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


@pytest.mark.skipif(not hasattr(np.ndarray, "__dlpack__"), reason="NumPy < 1.22 has no DLPack export")
def test_dlpack_protocol_inputs():
    rng = np.random.default_rng(11)
    inputs = make_inputs(rng, bias=True, transposed=True)
    wrapped = {k: DLPackOnly(v) for k, v in inputs.items()}
    out = moekit.experts(**wrapped, transposed=True, backend="eager")
    assert isinstance(out, np.ndarray)
    direct = moekit.experts(**inputs, transposed=True, backend="eager")
    assert np.array_equal(out, direct)


# ---- errors: an exception carrying the library's message, never a crash ----------------------------

def test_unknown_backend():
    inputs = make_inputs(np.random.default_rng(12))
    with pytest.raises(moekit.BackendNotFoundError, match=r"unknown backend 'nope' for cpu; valid backends: .*grouped_mm"):
        moekit.experts(**inputs, backend="nope")
    try:
        moekit.experts(**inputs, backend="nope")
    except moekit.MoekitError as e:
        assert e.code == "not_found" and e.status == 3


def test_bad_shape():
    inputs = make_inputs(np.random.default_rng(13))
    inputs["down_proj"] = inputs["down_proj"][:, :, :-1].copy()
    with pytest.raises(moekit.InvalidArgumentError, match=r"down_proj must be \[E, H, I\] = \[4, 32, 16\], got \[4, 32, 15\]"):
        moekit.experts(**inputs)


def test_bad_dtype():
    inputs = make_inputs(np.random.default_rng(14))
    inputs["gate_up_proj"] = inputs["gate_up_proj"].astype(np.float16)
    with pytest.raises(moekit.InvalidArgumentError, match="gate_up_proj must have the hidden_states dtype f32, got f16"):
        moekit.experts(**inputs)
    inputs = make_inputs(np.random.default_rng(14))
    inputs["hidden_states"] = inputs["hidden_states"].astype(np.float64)
    with pytest.raises(moekit.InvalidArgumentError, match="hidden_states must be bf16, f16 or f32, got f64"):
        moekit.experts(**inputs)
    inputs = make_inputs(np.random.default_rng(14))
    inputs["top_k_index"] = inputs["top_k_index"].astype(np.uint8)
    with pytest.raises(moekit.InvalidArgumentError, match="top_k_index has element type uint8"):
        moekit.experts(**inputs)


def test_negative_id():
    inputs = make_inputs(np.random.default_rng(15))
    inputs["top_k_index"][2, 1] = -1
    with pytest.raises(moekit.InvalidArgumentError, match=r"top_k_index\[2, 1\] = -1 is negative"):
        moekit.experts(**inputs)


def test_strides_refused_clearly():
    inputs = make_inputs(np.random.default_rng(16))
    wide = np.repeat(inputs["hidden_states"], 2, axis=1)
    with pytest.raises(moekit.InvalidArgumentError, match="hidden_states must have unit stride in its last dimension"):
        moekit.experts(**dict(inputs, hidden_states=wide[:, ::2]))
    gu = np.ascontiguousarray(inputs["gate_up_proj"].transpose(0, 2, 1)).transpose(0, 2, 1)
    with pytest.raises(moekit.InvalidArgumentError, match="gate_up_proj must be contiguous"):
        moekit.experts(**dict(inputs, gate_up_proj=gu))


def test_bad_options():
    inputs = make_inputs(np.random.default_rng(17))
    with pytest.raises(moekit.InvalidArgumentError, match="unknown activation 'swiglu'"):
        moekit.experts(**inputs, activation="swiglu")
    with pytest.raises(moekit.InvalidArgumentError, match="gate_layout must be"):
        moekit.experts(**inputs, gate_layout="split")
    with pytest.raises(moekit.InvalidArgumentError, match="gate_up_proj_bias and down_proj_bias come together"):
        moekit.experts(**inputs, gate_up_proj_bias=np.zeros((4, 32), np.float32))
    with pytest.raises(moekit.InvalidArgumentError, match="threads must be >= 0"):
        moekit.experts(**inputs, threads=-2)


def test_output_problems():
    inputs = make_inputs(np.random.default_rng(18))
    ro = np.empty((5, 32), np.float32)
    ro.setflags(write=False)
    with pytest.raises(moekit.InvalidArgumentError, match="output is read-only"):
        moekit.experts(**inputs, out=ro)
    with pytest.raises(moekit.InvalidArgumentError, match="output overlaps hidden_states"):
        moekit.experts(**inputs, out=inputs["hidden_states"])
    with pytest.raises(moekit.InvalidArgumentError, match=r"output must be \[T, H\]"):
        moekit.experts(**inputs, out=np.empty((5, 31), np.float32))


def test_not_an_array():
    inputs = make_inputs(np.random.default_rng(19))
    with pytest.raises(moekit.InvalidArgumentError, match="top_k_weights is a list"):
        moekit.experts(**dict(inputs, top_k_weights=[[0.5, 0.5]] * 5))


def test_backends_and_version():
    rows = moekit.backends()
    cpu = {r["name"] for r in rows if r["device"] == "cpu"}
    assert {"eager", "batched_mm", "grouped_mm"} <= cpu
    assert all(r["available"] for r in rows if r["device"] == "cpu")
    assert moekit.version().count(".") == 2
    assert moekit.library_path().is_file()


def test_missing_library_is_a_clear_error(tmp_path):
    code = "import moekit, numpy as np\ntry:\n    moekit.version()\nexcept moekit.MoekitError as e:\n    print(e)\n"
    env = dict(os.environ, MOEKIT_LIBRARY=str(tmp_path / "libnothing.so"),
               PYTHONPATH=os.pathsep.join([p for p in sys.path if p]))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "MOEKIT_LIBRARY=" in res.stdout and "is not a file" in res.stdout


# ---- torch on the CPU, where torch is installed (not needed by CI) ----------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


@pytest.mark.skipif(_torch() is None, reason="torch is not installed")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_torch_cpu_tensors(dtype):
    torch = _torch()
    tdtype = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    T, H, I, E, K = 6, 32, 16, 4, 2
    x = torch.randn(T, H, generator=g).to(tdtype)
    gu = (torch.randn(E, 2 * I, H, generator=g) * H ** -0.5).to(tdtype).requires_grad_()
    dn = (torch.randn(E, H, I, generator=g) * I ** -0.5).to(tdtype)
    idx = torch.stack([torch.randperm(E, generator=g)[:K] for _ in range(T)])
    w = torch.rand(T, K, generator=g)
    out = moekit.experts(x, idx, w, gu, dn)
    assert isinstance(out, torch.Tensor) and out.dtype == tdtype and out.shape == (T, H)
    ref = reference(*(t.detach().float().numpy() for t in (x, idx, w, gu, dn)))
    # gate_up requires grad like a model's parameter; the op has no backward, so compare detached.
    assert rel_error(out.detach().float().numpy(), ref) <= TOLERANCE[dtype]
