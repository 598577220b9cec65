"""The GPU benchmark: ``python -m aerogan.bench.gpu --out gpu.json`` (same as ``python -m aerogan.bench --device cuda``).

Runs the training-step, monitoring, scene-prediction and scaling benchmarks on a CUDA device with the gpu
profile (``configs/gpu.yaml``: SRResNet 16x64, PatchCritic 64x4, n_critic 5, 32 x 128² HR patches, x4),
``precision="bf16-mixed"`` (bf16 autocast on both the Lightning and the plain side; the gradient penalty
stays float32, as in :func:`aerogan.losses.gradient_penalty`) and both memory formats (contiguous and
channels_last; the faster gives the headline). Sized to finish in under five minutes on one H100-class GPU.
Every option of ``python -m aerogan.bench`` applies; ``--device cpu --quick`` runs the same code on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["main", "run"]


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from aerogan.bench.suite import run as _run

    return _run(argv, gpu=True)


def main(argv: Sequence[str] | None = None) -> None:
    run(argv)


if __name__ == "__main__":
    main()
