"""Export the generator alone (EMA weights when enabled) to TorchScript and ONNX, with its metadata.

The exported graph maps *physical* LR input to *physical* SR output: the per-band normalisation is
baked in, so the file runs without this package. Metadata travels inside the file (TorchScript:
the extra file ``aerogan.json``; ONNX: ``metadata_props``, each value JSON-encoded): input and output
band names, scale, normalisation statistics, data range, the objective and the source checkpoint.

Guided (multi-resolution, DSen2-style) models take named inputs: ``target`` (the coarse target bands,
``(B, C_t, h, w)``) and one input per guide group, finest first, ``guide0``, ``guide1``, ... of shape
``(B, C_k, h * f_k, w * f_k)`` with ``f_k = scale / guide_ratios[k]`` (``guide_factors``); every group
is normalised inside the graph, and non-finite input values (NaN, inf) are replaced by their band's mean
before the network, which is how the package fills nodata: set every band of a nodata pixel to NaN.
The metadata also names the bands of every input (``inputs``), the guide ratios and factors and the
network's measured ``receptive_radius`` (target pixels: the margin a tile needs to match whole-scene
output). ``aerogan/export_runtime.py`` (copied beside a guided ONNX export) makes the whole product from
exported T2 + S6 files with numpy, rasterio and onnxruntime alone.

    aerogan export --ckpt_path runs/quickstart/version_0/checkpoints/last.ckpt --out exported/
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerogan.atomic import atomic_output
from aerogan.prediction.api import load_model, model_scale
from aerogan.super_resolution import SuperResolution

#: The standalone product script (numpy, rasterio, onnxruntime only) that ``aerogan export`` copies beside
#: a guided ONNX export.
RUNTIME_SCRIPT = Path(__file__).with_name("export_runtime.py")

#: What the metadata advises about nodata for guided exports.
GUIDED_NODATA = (
    "a pixel is nodata in a group when every band of the group holds the file's nodata value (default 0) or any band "
    "is not finite; set every band of such a pixel to NaN: the graph replaces non-finite values by the band mean "
    "(input_mean, guide_mean), as the package does before its network. Mark an output pixel nodata where its target "
    "pixel, any guide pixel inside it, or the finest group there is nodata"
)


def _warn_projection(model: SuperResolution) -> None:
    if getattr(model, "consistency_projection", False):
        warnings.warn(
            "export: model.consistency_projection is not part of the exported graph (its solver checks convergence "
            "at run time); the exported network gives the generator's output before the projection",
            stacklevel=3,
        )


def _column(t: Tensor) -> Tensor:
    return t.detach().clone().view(1, -1, 1, 1)


class ExportedSuperResolution(nn.Module):
    """Normalise -> generator -> de-normalise, with the statistics as buffers."""

    def __init__(self, model: SuperResolution) -> None:
        super().__init__()
        _warn_projection(model)
        self.generator = copy.deepcopy(model.inference_generator).eval()
        self.register_buffer("input_mean", _column(model.input_norm.mean))
        self.register_buffer("input_std", _column(model.input_norm.std))
        self.register_buffer("target_mean", _column(model.target_norm.mean))
        self.register_buffer("target_std", _column(model.target_norm.std))

    def forward(self, x: Tensor) -> Tensor:
        y = self.generator((x - self.input_mean) / self.input_std)
        return y * self.target_std + self.target_mean


class ExportedGuidedSuperResolution(nn.Module):
    """A guided generator in physical units: ``forward(target, guide0, guide1, ...)``.

    Each input has its non-finite values replaced by its band means (the package's nodata filling), is
    normalised by its own statistics (target: ``input_norm``, guide group ``k``: ``guide_norms[k]``), then
    ``generator(target, guides) * target_std + target_mean``.
    """

    def __init__(self, model: SuperResolution) -> None:
        super().__init__()
        if not model.guide_norms:
            raise ValueError("ExportedGuidedSuperResolution needs a guided model (model.guide_norms is empty)")
        _warn_projection(model)
        self.generator = copy.deepcopy(model.inference_generator).eval()
        self.num_guides = len(model.guide_norms)
        self.register_buffer("input_mean", _column(model.input_norm.mean))
        self.register_buffer("input_std", _column(model.input_norm.std))
        self.register_buffer("target_mean", _column(model.target_norm.mean))
        self.register_buffer("target_std", _column(model.target_norm.std))
        for k, norm in enumerate(model.guide_norms):
            self.register_buffer(f"guide{k}_mean", _column(norm.mean))
            self.register_buffer(f"guide{k}_std", _column(norm.std))

    @staticmethod
    def _normalise(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        return (torch.where(torch.isfinite(x), x, mean) - mean) / std

    def forward(self, target: Tensor, *guides: Tensor) -> Tensor:
        x = self._normalise(target, self.input_mean, self.input_std)
        gs = tuple(
            self._normalise(g, getattr(self, f"guide{k}_mean"), getattr(self, f"guide{k}_std")) for k, g in enumerate(guides)
        )
        return self.generator(x, gs) * self.target_std + self.target_mean


class _PackedGuided(nn.Module):
    """The guided generator as a single-input net on the target grid (guide ``k`` pixel-unshuffled by ``f_k``),
    so that :func:`~aerogan.prediction.overlap.receptive_radius` measures its radius in target pixels."""

    def __init__(self, generator: nn.Module, target_channels: int, guide_channels: Sequence[int], factors: Sequence[int]) -> None:
        super().__init__()
        self.generator = generator
        self.splits = [target_channels] + [c * f * f for c, f in zip(guide_channels, factors, strict=True)]
        self.factors = list(factors)

    def forward(self, x: Tensor) -> Tensor:
        target, *packed = torch.split(x, self.splits, dim=1)
        guides = tuple(F.pixel_shuffle(p, f) if f > 1 else p for p, f in zip(packed, self.factors, strict=True))
        return self.generator(target, guides)


def guided_layout(model: SuperResolution) -> dict[str, Any]:
    """Band names, ratios and factors of a guided model's inputs, checked against its statistics.

    Raises ``ValueError`` naming what is missing or inconsistent.
    """
    meta = model.metadata or {}
    missing = [k for k in ("target_band_names", "guide_band_names", "guide_ratios") if not meta.get(k)]
    if missing:
        raise ValueError(
            f"export: the guided model's metadata lacks {missing}; a guided export names the bands of every input "
            "(train with aerogan fit on multi-resolution data, or set model.metadata)"
        )
    scale = model_scale(model)
    targets = [str(b) for b in meta["target_band_names"]]
    guides = [[str(b) for b in g] for g in meta["guide_band_names"]]
    ratios = [int(r) for r in meta["guide_ratios"]]
    norms = list(model.guide_norms)
    if len(targets) != model.input_norm.mean.numel():
        raise ValueError(f"export: metadata names {len(targets)} target bands {targets}, the model takes {model.input_norm.mean.numel()}")
    if len(guides) != len(norms) or len(ratios) != len(norms):
        raise ValueError(
            f"export: metadata names {len(guides)} guide group(s) {guides} with ratios {ratios}; the generator takes {len(norms)}"
        )
    for k, (g, norm) in enumerate(zip(guides, norms, strict=True)):
        if not norm.initialized or norm.mean.numel() != len(g):
            raise ValueError(f"export: guide group {k} {g} has no matching band statistics (guide_norms[{k}] holds {norm.mean.numel()})")
    for k, r in enumerate(ratios):
        if r < 1 or scale % r:
            raise ValueError(f"export: guide_ratios[{k}]={r} (guide group {guides[k]}) does not divide the scale {scale}")
    return {"scale": scale, "targets": targets, "guides": guides, "ratios": ratios, "factors": [scale // r for r in ratios]}


def guided_receptive_radius(model: SuperResolution) -> int:
    """The guided generator's receptive radius in target pixels (measured, as the package's tiling does)."""
    from aerogan.prediction.overlap import receptive_radius

    layout = guided_layout(model)
    packed = _PackedGuided(model.inference_generator, len(layout["targets"]), [len(g) for g in layout["guides"]], layout["factors"])
    channels = sum(packed.splits)
    return int(receptive_radius(packed, channels, layout["scale"]))


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
            "guided": bool(model.guide_norms),
            "input_names": ["lr"],
            "output_names": ["sr"],
        }
    )
    if model.guide_norms:
        layout = guided_layout(model)
        names = ["target"] + [f"guide{k}" for k in range(len(layout["guides"]))]
        guide_mean = [norm.mean.tolist() for norm in model.guide_norms]
        guide_std = [norm.std.tolist() for norm in model.guide_norms]
        meta.update(
            {
                "scale": layout["scale"],
                "target_band_names": layout["targets"],
                "guide_band_names": layout["guides"],
                "guide_ratios": layout["ratios"],
                "guide_factors": layout["factors"],
                "guide_mean": guide_mean,
                "guide_std": guide_std,
                "input_names": names,
                "inputs": [
                    {"name": names[0], "bands": layout["targets"], "pixels_per_target_pixel": 1,
                     "mean": meta["input_mean"], "std": meta["input_std"]},
                    *({"name": names[k + 1], "bands": g, "pixels_per_target_pixel": f, "mean": m, "std": s}
                      for k, (g, f, m, s) in enumerate(zip(layout["guides"], layout["factors"], guide_mean, guide_std, strict=True))),
                ],
                "receptive_radius": guided_receptive_radius(model),
                "nodata": GUIDED_NODATA,
            }
        )
    return meta


def _example_input(meta: dict[str, Any], size: int) -> Tensor:
    mean = torch.tensor(meta["input_mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["input_std"]).view(1, -1, 1, 1)
    return mean + std * torch.randn(1, meta["in_channels"], size, size, generator=torch.Generator().manual_seed(0))


def _example_inputs(meta: dict[str, Any], size: int) -> tuple[Tensor, ...]:
    """One example per input of the exported graph (target ``size`` px, guides ``size * f_k`` px)."""
    if not meta.get("guided"):
        return (_example_input(meta, size),)
    gen = torch.Generator().manual_seed(0)
    out = []
    for spec in meta["inputs"]:
        side = size * spec["pixels_per_target_pixel"]
        mean = torch.tensor(spec["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(spec["std"]).view(1, -1, 1, 1)
        out.append(mean + std * torch.randn(1, len(spec["bands"]), side, side, generator=gen))
    return tuple(out)


def _wrapper(model: SuperResolution) -> nn.Module:
    wrapped = ExportedGuidedSuperResolution(model) if model.guide_norms else ExportedSuperResolution(model)
    return wrapped.cpu().eval()


def export_torchscript(model: SuperResolution, path: str | Path, example_size: int = 32, source: str | None = None) -> Path:
    """Trace the exported module and save it (atomically) with ``aerogan.json`` metadata.

    A guided model's module is called ``module(target, guide0, guide1, ...)`` (see the module docstring).
    """
    path = Path(path)
    meta = export_metadata(model, source)
    wrapper = _wrapper(model)
    with torch.no_grad(), warnings.catch_warnings():
        # the generators' shape checks are Python comparisons: the trace keeps the shapes symbolic regardless
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, _example_inputs(meta, example_size))
    with atomic_output(path) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files={"aerogan.json": json.dumps(meta)})
    return path


def export_onnx(model: SuperResolution, path: str | Path, example_size: int = 32, source: str | None = None) -> Path:
    """Export to ONNX with dynamic batch, height and width, metadata in ``metadata_props``.

    Single-input models take ``lr``; guided models ``target``, ``guide0``, ``guide1``, ... whose sides are
    tied to the target's (``guide_factors[k]`` times it). The output is ``sr``.
    """
    import onnx

    path = Path(path)
    meta = export_metadata(model, source)
    wrapper = _wrapper(model)
    examples = _example_inputs(meta, example_size)
    batch, height, width = (torch.export.Dim(n, min=1) for n in ("batch", "height", "width"))
    target_axes = {0: batch, 2: height, 3: width}
    if meta["guided"]:
        guide_axes = tuple({0: batch, 2: f * height, 3: f * width} for f in meta["guide_factors"])
        dynamic: Any = (target_axes, guide_axes)  # forward(target, *guides)
    else:
        dynamic = {"x": target_axes}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*axis name.*will not be used")
        program = torch.onnx.export(
            wrapper, examples, input_names=meta["input_names"], output_names=meta["output_names"], dynamo=True,
            dynamic_shapes=dynamic, external_data=False, verbose=False,
        )
    proto = program.model_proto
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    with atomic_output(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return path


def copy_runtime(out: str | Path) -> Path:
    """Copy the standalone product script (:data:`RUNTIME_SCRIPT`) into the folder ``out``."""
    dst = Path(out) / RUNTIME_SCRIPT.name
    with atomic_output(dst) as tmp:
        shutil.copyfile(RUNTIME_SCRIPT, tmp)
    return dst


def main(argv: Sequence[str] | None = None) -> None:
    """``aerogan export --ckpt_path CKPT --out DIR [--format torchscript onnx]``."""
    parser = argparse.ArgumentParser(prog="aerogan export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by aerogan fit")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", nargs="+", choices=["torchscript", "onnx"], default=["torchscript", "onnx"])
    parser.add_argument("--example_size", type=int, default=32, help="LR (target) side of the tracing example")
    args = parser.parse_args(argv)
    if args.example_size < 1:
        parser.error(f"--example_size {args.example_size} must be >= 1")
    model = load_model(args.ckpt_path)
    out = Path(args.out)
    stem = Path(args.ckpt_path).stem
    if "torchscript" in args.format:
        print(export_torchscript(model, out / f"{stem}.torchscript.pt", args.example_size, str(args.ckpt_path)))
    if "onnx" in args.format:
        print(export_onnx(model, out / f"{stem}.onnx", args.example_size, str(args.ckpt_path)))
        if model.guide_norms:  # the standalone product script for guided ONNX models (T2, S6)
            print(copy_runtime(out))

