"""moekit as a transformers experts implementation.

    import moekit.transformers
    moekit.transformers.register()
    model = AutoModelForCausalLM.from_pretrained(path, experts_implementation="moekit_grouped_mm")

``register()`` adds ``moekit_eager``, ``moekit_batched_mm``, ``moekit_grouped_mm``, ``moekit_fused``
and ``moekit_auto`` to transformers' ExpertsInterface. Each runs moekit's backend of that name on the
experts module's own parameters, honouring what ``@use_experts_implementation`` declared for the
class (``is_transposed``, ``has_bias``, ``has_gate``) and what its ``_apply_gate`` and ``act_fn``
compute. A module whose gate or activation moekit cannot express raises UnsupportedError naming
the class; moekit never computes something else in its place.
"""

from __future__ import annotations

import torch

from . import _torch_op
from ._lib import UnsupportedError

BACKENDS = ("eager", "batched_mm", "grouped_mm", "fused", "auto")
PREFIX = "moekit_"

# act_fn classes whose function moekit has, by (defining module, class name). Exact classes only: a
# subclass may compute anything.
_ACTIVATIONS = {
    ("torch.nn.modules.activation", "SiLU"): "silu",
    ("torch.nn.modules.activation", "ReLU"): "relu",
    ("transformers.activations", "SiLUActivation"): "silu",
    ("transformers.activations", "GELUActivation"): "gelu",          # erf, both of its code paths
    ("transformers.activations", "GELUTanh"): "gelu_tanh",
    ("transformers.activations", "PytorchGELUTanh"): "gelu_tanh",
    ("transformers.activations", "NewGELUActivation"): "gelu_tanh",  # the same tanh formula
    ("transformers.activations", "FastGELUActivation"): "gelu_tanh",
}


def _activation_of(module) -> str:
    act = getattr(module, "act_fn", None)
    cls = type(act)
    if cls.__module__ == "torch.nn.modules.activation" and cls.__name__ == "GELU":
        return "gelu_tanh" if act.approximate == "tanh" else "gelu"
    name = _ACTIVATIONS.get((cls.__module__, cls.__name__))
    if name is None:
        raise UnsupportedError(
            f"{type(module).__name__}.act_fn is {cls.__module__}.{cls.__name__}, which moekit cannot compute "
            "(it has silu, gelu, gelu_tanh and relu): use a transformers experts implementation for this model",
            "unsupported", 2)
    return name


# The gate functions moekit knows, resolved by register() (outside any torch.compile trace).
_known_gates: dict = {"default": None, "gpt_oss": None}


def _resolve_gates() -> None:
    from transformers.integrations import moe

    _known_gates["default"] = moe._default_apply_gate
    try:
        from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts
    except ImportError:  # a transformers without gpt-oss: nothing of it to recognise
        return
    _known_gates["gpt_oss"] = GptOssExperts._apply_gate


def _gate_of(module) -> tuple[str, str, float, float]:
    """(activation, gate_layout, swiglu_alpha, swiglu_limit) of a gated experts module."""
    gate = getattr(type(module), "_apply_gate", None)
    if _known_gates["default"] is None:
        _resolve_gates()
    if gate is not None and gate is _known_gates["default"]:
        # chunk(2): gate rows first, whatever is_concatenated says, exactly as transformers computes.
        return _activation_of(module), "concatenated", 1.702, 7.0
    if gate is not None and gate is _known_gates["gpt_oss"]:
        return "clamped_swiglu", "interleaved", float(module.alpha), float(module.limit)
    raise UnsupportedError(
        f"{type(module).__name__} has its own _apply_gate ({getattr(gate, '__qualname__', gate)}), which moekit "
        "does not know how to compute: use a transformers experts implementation for this model",
        "unsupported", 2)


def experts_forward(backend: str):
    """The ExpertsInterface function that runs moekit's `backend`."""

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                top_k_weights: torch.Tensor) -> torch.Tensor:
        has_gate = bool(getattr(self, "has_gate", True))
        has_bias = bool(getattr(self, "has_bias", False))
        if has_gate:
            activation, layout, alpha, limit = _gate_of(self)
            first = self.gate_up_proj
            first_bias = self.gate_up_proj_bias if has_bias else None
        else:
            activation, layout, alpha, limit = _activation_of(self), "concatenated", 1.702, 7.0
            first = self.up_proj
            first_bias = self.up_proj_bias if has_bias else None
        down_bias = self.down_proj_bias if has_bias else None
        # As transformers' grouped_mm: activations in the weights' dtype (autocast may hand fp32),
        # the result in the caller's.
        x = hidden_states.to(first.dtype)
        weights = top_k_weights
        if weights.dtype not in (torch.float32, x.dtype):
            weights = weights.float()
        out = _torch_op.experts_op(x, top_k_index, weights, first, self.down_proj, first_bias, down_bias, backend,
                                   activation, layout, has_gate, bool(getattr(self, "is_transposed", False)),
                                   alpha, limit, 0)
        return out.to(hidden_states.dtype)

    forward.__name__ = forward.__qualname__ = f"moekit_{backend}_experts_forward"
    return forward


def names() -> list[str]:
    """The experts_implementation names register() adds."""
    return [PREFIX + b for b in BACKENDS]


def register() -> list[str]:
    """Adds moekit's backends to transformers' ExpertsInterface; returns their names. Idempotent."""
    if _torch_op.experts_op is None:
        raise UnsupportedError(f"moekit.transformers needs torch.library.custom_op (torch >= 2.4), this is torch "
                               f"{torch.__version__}", "unsupported", 2)
    from transformers.integrations.moe import ExpertsInterface

    _resolve_gates()
    for backend in BACKENDS:
        ExpertsInterface.register(PREFIX + backend, experts_forward(backend))
    return names()
