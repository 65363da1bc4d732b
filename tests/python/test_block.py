"""moekit.MoeBlock (the C API's moekit_block_*) on a tiny Mixtral checkpoint written here, against a
float64 NumPy block: softmax router -> top-k -> renormalise -> experts."""

import json
import struct

import numpy as np
import pytest

import moekit
from reference import reference

H, I, E, K, LAYER = 16, 8, 4, 2, 0  # every Mixtral layer is MoE: the first is layer 0


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    rng = np.random.default_rng(3)
    d = tmp_path_factory.mktemp("tiny_mixtral")
    (d / "config.json").write_text(json.dumps({
        "model_type": "mixtral", "hidden_size": H, "intermediate_size": I, "num_local_experts": E,
        "num_experts_per_tok": K, "num_hidden_layers": 2, "hidden_act": "silu"}))
    p = f"model.layers.{LAYER}.block_sparse_moe."
    w = {p + "gate.weight": rng.uniform(-2, 2, (E, H)) / np.sqrt(H)}
    for e in range(E):
        w[f"{p}experts.{e}.w1.weight"] = rng.uniform(-1, 1, (I, H)) / np.sqrt(H)
        w[f"{p}experts.{e}.w3.weight"] = rng.uniform(-1, 1, (I, H)) / np.sqrt(H)
        w[f"{p}experts.{e}.w2.weight"] = rng.uniform(-1, 1, (H, I)) / np.sqrt(I)
    write_safetensors(d / "model.safetensors", w)
    return d, {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}


def reference_block(x, w):
    p = f"model.layers.{LAYER}.block_sparse_moe."
    logits = x.astype(np.float64) @ w[p + "gate.weight"].T
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    idx = np.argsort(-probs, axis=1, kind="stable")[:, :K].astype(np.int32)
    top = np.take_along_axis(probs, idx, 1)
    top /= top.sum(1, keepdims=True)
    gate_up = np.stack([np.concatenate([w[f"{p}experts.{e}.w1.weight"], w[f"{p}experts.{e}.w3.weight"]]) for e in range(E)])
    down = np.stack([w[f"{p}experts.{e}.w2.weight"] for e in range(E)])
    return reference(x, idx, top, gate_up, down), idx, top, gate_up, down


@pytest.mark.parametrize("backend", ["eager", "batched_mm", "grouped_mm"])
def test_block_matches_reference(checkpoint, backend):
    d, w = checkpoint
    x = np.random.default_rng(5).uniform(-1, 1, (9, H)).astype(np.float32)
    with moekit.MoeBlock(d) as block:
        assert (block.layer, block.hidden_size, block.num_experts, block.top_k) == (LAYER, H, E, K)
        assert (block.model_type, block.dtype, block.device) == ("mixtral", "float32", "cpu")
        out = block.forward(x, backend=backend)
        ref, ref_idx, ref_w, _, _ = reference_block(x, w)
        assert out.dtype == np.float32 and out.shape == x.shape
        assert np.abs(out - ref).max() / np.abs(ref).max() <= 1e-4
        idx, wts = block.routing()
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_allclose(wts, ref_w, rtol=1e-5)


def test_block_with_given_routing_is_the_experts_call(checkpoint):
    d, w = checkpoint
    x = np.random.default_rng(6).uniform(-1, 1, (5, H)).astype(np.float32)
    idx = np.array([[0, 1], [2, E + 3], [3, 0], [1, 2], [E, 1]], dtype=np.int64)  # ids >= E: sentinels
    wts = np.full((5, K), 0.5, dtype=np.float32)
    _, _, _, gate_up, down = reference_block(x, w)
    block = moekit.MoeBlock(d, layer=LAYER)
    out = block(x, idx, wts)
    ref = reference(x, idx, wts, gate_up, down)
    assert np.abs(out - ref).max() / np.abs(ref).max() <= 1e-4
    with pytest.raises(moekit.InvalidArgumentError, match="no forward without given routing"):
        block.routing()


def test_block_errors_name_the_problem(checkpoint, tmp_path):
    d, _ = checkpoint
    with pytest.raises(moekit.MoekitError, match="layer"):
        moekit.MoeBlock(d, layer=7)
    with pytest.raises(moekit.NotFoundError, match="experts.0.w1"):
        moekit.MoeBlock(d, layer=1)  # in range, but this checkpoint holds layer 0 alone
    with pytest.raises(moekit.MoekitError, match="config.json"):
        moekit.MoeBlock(tmp_path)
    with pytest.raises(moekit.InvalidArgumentError, match="device"):
        moekit.MoeBlock(d, device="tpu")
    block = moekit.MoeBlock(d)
    with pytest.raises(moekit.InvalidArgumentError, match="hidden_states"):
        block.forward(np.zeros((3, H + 1), dtype=np.float32))
    block.close()
    with pytest.raises(moekit.InvalidArgumentError, match="closed"):
        block.forward(np.zeros((3, H), dtype=np.float32))
