"""Export the generator alone (EMA weights when enabled) to TorchScript and ONNX, with its metadata.

The exported graph maps *physical* LR input to *physical* SR output: the per-band normalisation is
baked in, so the file runs without this package. Metadata travels inside the file (TorchScript:
the extra file ``aerogan.json``; ONNX: ``metadata_props``): input and output band names, scale,
normalisation statistics, data range, the objective and the source checkpoint.

    aerogan export --ckpt_path runs/quickstart/version_0/checkpoints/last.ckpt --out exported/
"""

from __future__ import annotations

import argparse
import copy
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aerogan.atomic import atomic_output
from aerogan.prediction.api import load_model
from aerogan.super_resolution import SuperResolution


class ExportedSuperResolution(nn.Module):
    """Normalise -> generator -> de-normalise, with the statistics as buffers."""

    def __init__(self, model: SuperResolution) -> None:
        super().__init__()
        if getattr(model, "consistency_projection", False):
            warnings.warn(
                "export: model.consistency_projection is not part of the exported graph (its solver checks convergence "
                "at run time); the exported network gives the generator's output before the projection",
                stacklevel=2,
            )
        self.generator = copy.deepcopy(model.inference_generator).eval()
        self.register_buffer("input_mean", model.input_norm.mean.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("input_std", model.input_norm.std.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("target_mean", model.target_norm.mean.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("target_std", model.target_norm.std.detach().clone().view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = self.generator((x - self.input_mean) / self.input_std)
        return y * self.target_std + self.target_mean


def export_metadata(model: SuperResolution, source: str | None = None) -> dict[str, Any]:
    """Everything a user of the exported file needs to feed it and read its output."""
    meta = dict(model.metadata)
    meta.update(
        {
            "format_version": 1,
            "input_mean": model.input_norm.mean.tolist(),
            "input_std": model.input_norm.std.tolist(),
            "target_mean": model.target_norm.mean.tolist(),
            "target_std": model.target_norm.std.tolist(),
            "in_channels": int(model.input_norm.mean.numel()),
            "out_channels": int(model.target_norm.mean.numel()),
            "objective": model.objective,
            "ema": model.generator_ema is not None,
            "units": "physical (same as the training data); normalisation is inside the graph",
            "source_checkpoint": source,
        }
    )
    return meta


def _example_input(meta: dict[str, Any], size: int) -> Tensor:
    mean = torch.tensor(meta["input_mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["input_std"]).view(1, -1, 1, 1)
    return mean + std * torch.randn(1, meta["in_channels"], size, size, generator=torch.Generator().manual_seed(0))


def export_torchscript(model: SuperResolution, path: str | Path, example_size: int = 32, source: str | None = None) -> Path:
    """Trace the exported module and save it (atomically) with ``aerogan.json`` metadata."""
    path = Path(path)
    meta = export_metadata(model, source)
    wrapper = ExportedSuperResolution(model).cpu().eval()
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, _example_input(meta, example_size))
    with atomic_output(path) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files={"aerogan.json": json.dumps(meta)})
    return path


def export_onnx(model: SuperResolution, path: str | Path, example_size: int = 32, source: str | None = None) -> Path:
    """Export to ONNX with dynamic batch, height and width, metadata in ``metadata_props``."""
    import onnx

    path = Path(path)
    meta = export_metadata(model, source)
    wrapper = ExportedSuperResolution(model).cpu().eval()
    example = _example_input(meta, example_size)
    batch, height, width = (torch.export.Dim(n, min=1) for n in ("batch", "height", "width"))
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper, (example,), input_names=["lr"], output_names=["sr"], dynamo=True,
            dynamic_shapes={"x": {0: batch, 2: height, 3: width}}, external_data=False, verbose=False,
        )
    proto = program.model_proto
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    with atomic_output(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """``aerogan export --ckpt_path CKPT --out DIR [--format torchscript onnx]``."""
    parser = argparse.ArgumentParser(prog="aerogan export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by aerogan fit")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", nargs="+", choices=["torchscript", "onnx"], default=["torchscript", "onnx"])
    parser.add_argument("--example_size", type=int, default=32, help="LR side of the tracing example")
    args = parser.parse_args(argv)
    model = load_model(args.ckpt_path)
    out = Path(args.out)
    stem = Path(args.ckpt_path).stem
    if "torchscript" in args.format:
        print(export_torchscript(model, out / f"{stem}.torchscript.pt", args.example_size, str(args.ckpt_path)))
    if "onnx" in args.format:
        print(export_onnx(model, out / f"{stem}.onnx", args.example_size, str(args.ckpt_path)))
