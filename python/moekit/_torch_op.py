"""moekit's experts call as a torch.library custom op, ``torch.ops.moekit.experts``.

An op is opaque to torch.compile: the graph keeps it as one node (shape inference comes from the
fake implementation below) instead of tracing into ctypes, so ``fullgraph=True`` compiles around it.
Inference only: there is no backward.
"""

# No `from __future__ import annotations`: torch.library reads the real annotations for the schema.
from typing import Optional

import torch

from . import _experts

OP_NAME = "moekit::experts"


def _impl(hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor,
          gate_up_proj: torch.Tensor, down_proj: torch.Tensor, gate_up_proj_bias: Optional[torch.Tensor],
          down_proj_bias: Optional[torch.Tensor], backend: str, activation: str, gate_layout: str,
          has_gate: bool, transposed: bool, swiglu_alpha: float, swiglu_limit: float,
          threads: int) -> torch.Tensor:
    return _experts.run(hidden_states, top_k_index, top_k_weights, gate_up_proj, down_proj, gate_up_proj_bias,
                        down_proj_bias, None, backend, activation, gate_layout, has_gate, transposed, swiglu_alpha,
                        swiglu_limit, threads, None, False)


def _fake(hidden_states, top_k_index, top_k_weights, gate_up_proj, down_proj, gate_up_proj_bias, down_proj_bias,
          backend, activation, gate_layout, has_gate, transposed, swiglu_alpha, swiglu_limit, threads):
    # The real call writes a fresh contiguous tensor shaped and typed like hidden_states; every check
    # of shapes and names happens there, with the library's messages.
    return hidden_states.new_empty(hidden_states.shape)


def _register():
    if not hasattr(torch, "library") or not hasattr(torch.library, "custom_op"):
        return None  # torch < 2.4: moekit.experts still works on torch tensors, just not under torch.compile
    try:
        op = torch.library.custom_op(OP_NAME, mutates_args=())(_impl)
    except RuntimeError:
        # Registered already (a second copy of this module in the process): use that one.
        return torch.ops.moekit.experts
    op.register_fake(_fake)
    return torch.ops.moekit.experts


experts_op = _register()
