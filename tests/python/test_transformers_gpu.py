"""moekit as transformers' experts implementation, on a GPU (skipped without torch, CUDA and transformers).

Tiny random Solar-Open, Mixtral, Qwen3-MoE and gpt-oss models built from transformers' own config
classes: the logits of every moekit backend against transformers' eager experts, greedy generate()
against transformers' grouped_mm, torch.compile(fullgraph=True) around the custom op, and the
README's transformers example, run verbatim. scripts/gpu/python.sh runs this file.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import moekit  # noqa: E402
import moekit.transformers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ["solar_open", "mixtral", "qwen3_moe", "gpt_oss"]
MOEKIT_IMPLS = moekit.transformers.names()  # moekit_eager, ..., moekit_fused, moekit_auto


@pytest.fixture(scope="module", autouse=True)
def registered():
    moekit.transformers.register()


def cuda_backends():
    return {b["name"] for b in moekit.backends() if b["device"] == "cuda" and b["available"]}


def tiny_config(family):
    common = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=256)
    if family == "solar_open":
        return transformers.SolarOpenConfig(**common, head_dim=16, moe_intermediate_size=32, n_routed_experts=8,
                                            num_experts_per_tok=2, n_shared_experts=1, n_group=1, topk_group=1)
    if family == "mixtral":
        return transformers.MixtralConfig(**common, intermediate_size=48, num_local_experts=4, num_experts_per_tok=2)
    if family == "qwen3_moe":
        return transformers.Qwen3MoeConfig(**common, moe_intermediate_size=32, num_experts=8, num_experts_per_tok=2,
                                           norm_topk_prob=True)
    if family == "gpt_oss":
        return transformers.GptOssConfig(**common, head_dim=16, intermediate_size=32, num_local_experts=8,
                                         num_experts_per_tok=2, sliding_window=32)
    raise ValueError(family)


_models = {}


def tiny_model(family, dtype="bfloat16"):
    """A random model on the GPU, weights large enough that the experts matter to the logits."""
    if (family, dtype) not in _models:
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(tiny_config(family), attn_implementation="eager")
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    continue
                if p.dim() >= 2:
                    p.normal_(0.0, 64 ** -0.5 if "embed" not in name else 1.0)
                else:
                    p.normal_(0.0, 0.1)
        _models[(family, dtype)] = model.to(device="cuda", dtype=getattr(torch, dtype)).eval()
    return _models[(family, dtype)]


def input_ids(seed=1, shape=(2, 12)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 128, shape, generator=g).cuda()


def logits(model, impl, ids):
    model.set_experts_implementation(impl)
    with torch.no_grad():
        return model(ids).logits.float()


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_transformers_eager(family):
    model = tiny_model(family)
    ids = input_ids()
    ref = logits(model, "eager", ids)
    # bf16: the bar is the larger of 3e-2 and three times transformers' own grouped_mm's distance.
    hf_grouped = rel(logits(model, "grouped_mm", ids), ref)
    bar = max(3e-2, 3 * hf_grouped)
    have = cuda_backends()
    report = [f"transformers grouped_mm vs eager: {hf_grouped:.2e}"]
    for impl in MOEKIT_IMPLS:
        backend = impl[len("moekit_"):]
        if backend not in have:
            # fused/auto until the library has them: the library's own message, no fallback.
            with pytest.raises(moekit.MoekitError, match=f"backend '{backend}'"):
                logits(model, impl, ids)
            report.append(f"{impl}: not in this libmoekit (raises)")
            continue
        err = rel(logits(model, impl, ids), ref)
        report.append(f"{impl}: {err:.2e}")
        assert err <= bar, f"{family} {impl}: relative logits error {err:.3g} > {bar:.3g}\n" + "\n".join(report)
    print(f"{family}: " + "; ".join(report))


def greedy(model, impl, ids):
    model.set_experts_implementation(impl)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generate_matches_transformers_grouped_mm(family, dtype):
    """16 greedy tokens equal to transformers' grouped_mm.

    float32: exactly. bfloat16: exactly, unless transformers' own logits at the first differing
    step hold a near-tie (top-2 margin within the bf16 logits tolerance), where the two sides'
    different rounding may pick either token; such a step is printed, never silently passed.
    """
    model = tiny_model(family, dtype)
    ids = input_ids(seed=2, shape=(1, 8))
    ref = greedy(model, "grouped_mm", ids)
    got = greedy(model, "moekit_grouped_mm", ids)
    assert len(ref) == 16
    if got == ref:
        return
    assert dtype == "bfloat16", f"{family} {dtype}: {ref} != {got}"
    step = next(i for i, (a, b) in enumerate(zip(ref, got)) if a != b)
    prefix = torch.cat([ids, torch.tensor([ref[:step]], dtype=ids.dtype, device=ids.device)], dim=1)
    last = logits(model, "grouped_mm", prefix)[0, -1]
    top2 = last.topk(2).values
    margin, bar = (top2[0] - top2[1]).item(), 3e-2 * last.abs().max().item()
    assert margin <= bar, f"{family}: tokens differ at step {step} with a clear margin {margin:.3g} > {bar:.3g}: {ref} != {got}"
    print(f"{family} bf16: near-tie at step {step} (top-2 margin {margin:.3g} <= {bar:.3g}); tokens before it equal")


def test_unknown_gate_is_refused_by_name():
    model = tiny_model("mixtral")
    experts = model.model.layers[0].mlp.experts

    class CustomGateExperts(type(experts)):
        def _apply_gate(self, gate_up_out):
            gate, up = gate_up_out.chunk(2, dim=-1)
            return torch.tanh(gate) * up

    experts.__class__ = CustomGateExperts
    try:
        with pytest.raises(moekit.UnsupportedError, match="CustomGateExperts has its own _apply_gate"):
            logits(model, "moekit_grouped_mm", input_ids())
    finally:
        experts.__class__ = CustomGateExperts.__mro__[1]


class OpModule(torch.nn.Module):
    """Experts through the custom op, between ordinary torch ops."""

    def __init__(self, via_wrapper):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.gate_up = torch.nn.Parameter((torch.randn(8, 64, 64, generator=g) / 8).to(torch.bfloat16))
        self.down = torch.nn.Parameter((torch.randn(8, 64, 32, generator=g) / 6).to(torch.bfloat16))
        self.router = torch.nn.Parameter((torch.randn(8, 64, generator=g) / 8).to(torch.bfloat16))
        self.via_wrapper = via_wrapper

    def forward(self, x):
        probs = torch.softmax(x.float() @ self.router.float().t(), dim=-1)
        w, idx = torch.topk(probs, 2, dim=-1)
        if self.via_wrapper:
            y = moekit.experts(x, idx, w, self.gate_up, self.down, backend="grouped_mm")
        else:
            y = torch.ops.moekit.experts(x, idx, w, self.gate_up, self.down, None, None, "grouped_mm", "silu",
                                         "concatenated", True, False, 1.702, 7.0, 0)
        return x + 2 * y


@pytest.mark.parametrize("via_wrapper", [False, True], ids=["torch.ops.moekit.experts", "moekit.experts"])
def test_torch_compile_fullgraph(via_wrapper):
    m = OpModule(via_wrapper).cuda()
    x = torch.randn(10, 64, device="cuda").to(torch.bfloat16)
    with torch.no_grad():
        eager = m(x)
        torch._dynamo.reset()
        compiled = torch.compile(m, fullgraph=True)(x)
    assert torch.equal(eager, compiled)


def test_torch_compile_fullgraph_moe_block():
    """The transformers adapter itself traces: a Mixtral sparse block with moekit_grouped_mm."""
    model = tiny_model("mixtral")
    model.set_experts_implementation("moekit_grouped_mm")
    block = model.model.layers[0].mlp
    x = torch.randn(1, 9, 64, device="cuda").to(torch.bfloat16)
    with torch.no_grad():
        eager = block(x)
        torch._dynamo.reset()
        compiled = torch.compile(block, fullgraph=True)(x)
    assert torch.equal(eager, compiled)


def test_readme_transformers_example(tmp_path):
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- python-transformers:begin -->\s*```python\n(.*?)```\s*<!-- python-transformers:end -->",
                  readme, re.S)
    assert m, "README.md has no transformers example between its markers"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [str(ROOT / "python"), os.environ.get("PYTHONPATH")]
                                                      if p))
    res = subprocess.run([sys.executable, "-c", m.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1] == "True", res.stdout
