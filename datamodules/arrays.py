"""NumPy array scenes (a ``.npy`` file, memory-mapped, or an in-memory array), e.g. the Sentinel-2 sample.

The band axis is never guessed: ``layout`` says where it is. Accepted shapes: (H, W) single band;
(H, W, C) / (C, H, W) one scene; (N, H, W, C) / (N, C, H, W) N scenes. Splits are spatial blocks of
every scene (as for GeoTIFF), or whole scenes by index (``val_scenes``, ``test_scenes``).

``bin_factor`` averages ``f x f`` pixel blocks on read, for bands delivered on a grid finer than their
native resolution (the Sentinel-2 sample has its 20 m bands nearest-upsampled to 10 m: training on
them unbinned would teach the network to reproduce 2x2 blocks).

Prediction writes ``<output_dir>/<stem>_x<scale>.npy`` in the input's layout (scenes stacked as in
the input), float32 with NaN where the input was invalid (or the input dtype, see ``output_dtype``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from aerogan.prediction.plan import OutputSpec, PredictScene
from aerogan.prediction.sources import ArraySource, Layout
from datamodules.scenes import SceneDataModule
from datamodules.windows import Box


def load_array(path: str | Path, label: str = "path") -> np.ndarray:
    """Memory-map a ``.npy`` file, with one clear error for a missing or unreadable file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file (data.{label})")
    if p.suffix.lower() != ".npy":
        raise ValueError(f"{p}: data.{label} must be a .npy file (numpy.save), got {p.suffix or 'no suffix'}")
    try:
        return np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{p}: not a readable .npy array: {err}") from err


def _scene_axis(array: np.ndarray, layout: str, name: str) -> tuple[int | None, int, int, int]:
    """(num_scenes or None, H, W, C) of ``array`` under ``layout``."""
    if layout not in ("channels_last", "channels_first"):
        raise ValueError(f"data.layout={layout!r} must be 'channels_last' or 'channels_first'")
    if array.ndim == 2:
        return None, array.shape[0], array.shape[1], 1
    if array.ndim not in (3, 4):
        raise ValueError(f"{name}: expected an array of shape (H, W), (H, W, C), (C, H, W) or with a leading scene axis, got {array.shape}")
    n = array.shape[0] if array.ndim == 4 else None
    shape = array.shape[1:] if array.ndim == 4 else array.shape
    h, w, c = (shape[0], shape[1], shape[2]) if layout == "channels_last" else (shape[1], shape[2], shape[0])
    if c > h and c > w:
        warnings.warn(f"{name}: layout={layout} gives {c} bands of {h}x{w} px; is the layout right?", stacklevel=3)
    return n, h, w, c


class ArrayDataModule(SceneDataModule):
    """Super-resolution / band synthesis on scenes held in NumPy arrays.

    Args:
        layout: ``channels_last`` or ``channels_first`` (required: the band axis is never guessed).
        path: a ``.npy`` file (memory-mapped: scenes are read window by window).
        array: an in-memory array instead of ``path`` (Python API).
        band_names: one name per band (then bands may be selected by name).
        nodata: value marking missing pixels (NaN is always missing).
        bin_factor / bin_origin: average ``f x f`` blocks starting at (row, col) ``bin_origin`` on read.
        val_scenes / test_scenes: hold out whole scenes by index instead of spatial blocks.
        predict_path: a ``.npy`` of scenes to super-resolve (same layout and bands; default: this array).
        **kwargs: forwarded to :class:`~datamodules.scenes.SceneDataModule` (splits, sampling, statistics,
            prediction tiles and outputs, ``input_bands`` / ``target_bands``) and on to
            :class:`~datamodules.super_resolution.SuperResolutionDataModule` (``scale``, ``patch_size``,
            ``batch_size``, degradation, ...).
    """

    def __init__(
        self,
        layout: Layout,
        path: str | None = None,
        array: Any = None,
        band_names: list[str] | None = None,
        nodata: float | None = None,
        bin_factor: int = 1,
        bin_origin: list[int] | None = None,
        val_scenes: list[int] | None = None,
        test_scenes: list[int] | None = None,
        predict_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (path is None) == (array is None):
            raise ValueError("ArrayDataModule needs exactly one of data.path (a .npy file) and array (in memory)")
        self.layout = layout
        self.path = Path(path).expanduser() if path is not None else None
        data = load_array(path) if path is not None else np.asarray(array)
        name = str(self.path) if self.path is not None else "array"
        self.num_scenes, h, w, c = _scene_axis(data, layout, name)
        self.nodata = nodata
        self.bin_factor = bin_factor
        self.bin_origin = list(bin_origin) if bin_origin is not None else [0, 0]
        if band_names is not None and len(band_names) != c:
            raise ValueError(f"{name}: data.band_names has {len(band_names)} names for {c} bands")
        self._band_names = list(band_names) if band_names is not None else None
        self.predict_path = predict_path
        self.array = data
        self.sources = self._sources(data, self.path)
        self._resolve_bands()
        self.check_bands()
        self._init_scene_splits(val_scenes, test_scenes, name)

    def _sources(self, data: np.ndarray, path: Path | None) -> list[ArraySource]:
        n, *_ = _scene_axis(data, self.layout, str(path or "array"))
        scenes = [None] if n is None else list(range(n))
        return [
            ArraySource(data, s, self.layout, nodata=self.nodata, bin_factor=self.bin_factor, bin_origin=self.bin_origin,
                        path=path, band_names=self._band_names)
            for s in scenes
        ]

    def _init_scene_splits(self, val_scenes: list[int] | None, test_scenes: list[int] | None, name: str) -> None:
        if val_scenes is None and test_scenes is None:
            self._init_splits()
            return
        n = len(self.sources)
        if self.num_scenes is None:
            raise ValueError(f"{name}: data.val_scenes/test_scenes need a leading scene axis (a 4-D array); this array holds one scene")
        val, test = list(val_scenes or []), list(test_scenes or [])
        bad = [i for i in val + test if not 0 <= i < n]
        if bad:
            raise ValueError(f"{name}: scene indices {bad} are out of range (the array holds {n} scenes, 0..{n - 1})")
        if set(val) & set(test):
            raise ValueError(f"data.val_scenes {val} and data.test_scenes {test} overlap")
        boxes = []
        for i, src in enumerate(self.sources):
            full = Box(0, 0, src.height, src.width)
            boxes.append({"val": [full]} if i in val else {"test": [full]} if i in test else {"train": [full]})
        if not any("train" in b for b in boxes):
            raise ValueError(f"{name}: every scene is held out; leave at least one for training")
        self._init_splits(boxes)

    def band_names(self) -> list[str]:
        return list(self._band_names) if self._band_names is not None else [f"B{i}" for i in range(self.sources[0].count)]

    def _predict_plan_inputs(self) -> tuple[list[PredictScene], list[OutputSpec]]:
        if self.predict_path is not None:
            path = Path(self.predict_path).expanduser()
            data = load_array(path, "predict_path")
            sources = self._sources(data, path)
        else:
            path, data, sources = self.path, self.array, self.sources
        if sources[0].count != self.sources[0].count:
            raise ValueError(f"{path}: {sources[0].count} band(s), but the model's data has {self.sources[0].count}")
        stem = path.stem if path is not None else "array"
        spec = OutputSpec(
            path=Path(self.output_dir) / f"{stem}_x{self.scale}.npy", format="npy", height=sources[0].height,
            width=sources[0].width, input_dtype=str(data.dtype), input_nodata=self.nodata, num_scenes=len(sources),
            stacked=data.ndim == 4, layout=self.layout, source_name=str(path or "array"),
        )
        scenes = [PredictScene(src, list(self.input_bands), 0, i) for i, src in enumerate(sources)]
        return scenes, [spec]
