"""Compiling the decoder layers with ``torch.compile``, and the kernel cache it needs.

The attention function itself (where heads are masked, :mod:`ai_filters.engine.masking`)
stays eager; the attention kernels compile their own way (:mod:`ai_filters.engine.kernels`).
"""

from __future__ import annotations

import os

import torch


def compile_layers(model: torch.nn.Module) -> None:
    """Compile every decoder layer's attention and MLP with ``torch.compile`` (in place, once).

    The attention function itself (where heads are masked) stays eager: the compiled regions
    are the projections, norms and rotary embeddings before it and the output projection and
    MLP after it, with shapes marked dynamic so new batch shapes do not recompile. Compiled
    kernels are cached per CPU capability (:func:`inductor_cache_per_cpu_capability`).
    """
    inductor_cache_per_cpu_capability()
    for layer in model.base_model.layers:
        for part in (layer.self_attn, layer.mlp):
            if getattr(part, "_compiled_call_impl", None) is None:
                part.compile(dynamic=True)


def inductor_cache_per_cpu_capability() -> str:
    """Point inductor's on-disk kernel cache at a folder of the CPU capability ATen runs with
    (``cpu_AVX512``, ``cpu_AVX2``, ...), unless the user chose a folder; return the folder.

    torch 2.13's cache is not keyed by it: AVX-512 kernels loaded under
    ``ATEN_CPU_CAPABILITY=avx2`` gave a Llama loss 1.5 % off; the reverse crashed in malloc.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    default = os.path.abspath(default_cache_dir())
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is None or os.path.abspath(chosen) == default:
        capability = torch.backends.cpu.get_cpu_capability()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(default, f"cpu_{capability}")
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]
