r"""Small digit-classification subsets for the two-layer theory ("theory mode", docs/science.md §1, §2).

Inputs are flattened images, normalised to ``‖x‖ = 1`` as the theory assumes; targets are one-hot label
vectors (``d_out = 10``), so a generator ``f: R^{d_in} → R^{10}`` and a critic on ``R^{10}`` compare predicted
and one-hot vectors. Sources:

* ``sklearn_digits`` (default, embedded): scikit-learn's bundled 1797 real 8×8 handwritten digits
  (``sklearn.datasets.load_digits``; no download). ``d_in = 64``. Train and validation subsets are disjoint
  draws from the 1797 images.
* ``mnist`` / ``fashion_mnist``: read from the standard IDX files in ``root`` (never downloaded):
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``). ``root`` itself, ``root/raw``,
  ``root/MNIST/raw`` and ``root/FashionMNIST/raw`` (torchvision's layout) are searched. ``d_in = 784``.
  Training samples come from the train files, validation samples from the t10k files.

Subsets of ``num_train`` / ``num_val`` samples are drawn without replacement by ``seed``. Batches are
``{"input": (B, d_in) float32, "target": (B, 10) float32}``; ``batch_size=None`` means full batch (one
batch holding the whole training set: gradient descent on the full objective).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

__all__ = ["DigitsDataModule", "IDX_FILES", "find_idx_file", "read_idx"]

DigitsSource = Literal["sklearn_digits", "mnist", "fashion_mnist"]

#: The standard file names (without ``.gz``) of each split.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped (by content, not by name) or raw.

    Header: two zero bytes, a type byte (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions, then one big-endian int32 per dimension.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}i", raw[4:header])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header < count * dtype.itemsize:
        raise ValueError(
            f"{path}: IDX data holds {len(raw) - header} bytes, the header announces shape {shape}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header)
    return data.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def _candidate_folders(root: Path, source: str) -> list[Path]:
    sub = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}.get(source, "")
    folders = [root, root / "raw"]
    if sub:
        folders += [root / sub / "raw", root / sub]
    return folders


def find_idx_file(root: str | os.PathLike[str], name: str, source: str = "mnist") -> Path:
    """Locate ``name`` or ``name.gz`` under ``root`` (see the module docstring for the folders searched)."""
    for folder in _candidate_folders(Path(root), source):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    expected = ", ".join(n for pair in IDX_FILES.values() for n in pair)
    raise FileNotFoundError(
        f"{source}: {name}[.gz] not found in data.root={os.fspath(root)!r} (searched "
        f"{', '.join(os.fspath(f) for f in _candidate_folders(Path(root), source))}). The folder must hold the "
        f"standard IDX files, gzipped or not: {expected}. They are not downloaded automatically."
    )


class _TensorPairs(Dataset):
    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int | list[int]) -> dict[str, Tensor]:
        # a list of indices (from a BatchSampler) returns the whole batch at once: no per-sample collate
        if isinstance(index, list):
            index = torch.as_tensor(index, dtype=torch.long)
        return {"input": self.x[index], "target": self.y[index]}


class DigitsDataModule(L.LightningDataModule):
    """Seeded subsets of handwritten digits (or Fashion-MNIST) as ``(‖x‖ = 1, one-hot)`` pairs.

    Args:
        source: ``sklearn_digits`` (embedded, 8×8), ``mnist`` or ``fashion_mnist`` (IDX files in ``root``).
        root: folder of the IDX files (required for ``mnist`` / ``fashion_mnist``).
        num_train: training samples ``n``.
        num_val: validation samples (also used by ``test``).
        seed: seed of the subset draw.
        batch_size: training batch size; ``None`` = the whole training set in one batch (full-batch GD).
            Validation uses the same size (``None``: one batch).
        normalize: scale every input to unit Euclidean norm (the theory's ``‖x‖ = 1``); otherwise pixel
            values are divided by their maximum (16 for 8×8 digits, 255 for MNIST) into ``[0, 1]``.

    Properties linked to the generator by the CLI: ``in_channels`` (= d_in: 64 or 784), ``out_channels``
    (= 10) and ``scale`` (= 1).
    """

    def __init__(
        self,
        source: DigitsSource = "sklearn_digits",
        root: str | None = None,
        num_train: int = 200,
        num_val: int = 500,
        seed: int = 0,
        batch_size: int | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if source not in ("sklearn_digits", "mnist", "fashion_mnist"):
            raise ValueError(
                f"data.source must be 'sklearn_digits', 'mnist' or 'fashion_mnist', got {source!r}"
            )
        if source != "sklearn_digits" and root is None:
            expected = ", ".join(n for pair in IDX_FILES.values() for n in pair)
            raise ValueError(
                f"data.source={source!r} needs data.root: a folder holding the IDX files {expected} "
                "(optionally .gz); nothing is downloaded"
            )
        if num_train < 1 or num_val < 0:
            raise ValueError(
                f"data.num_train must be >= 1 and data.num_val >= 0, got {num_train} and {num_val}"
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"data.batch_size must be None (full batch) or >= 1, got {batch_size}")
        self.source = source
        self.root = root
        self.num_train = int(num_train)
        self.num_val = int(num_val)
        self.seed = int(seed)
        self.batch_size = batch_size
        self.normalize = bool(normalize)
        self.tensors: dict[str, tuple[Tensor, Tensor]] = {}

    # ------------------------------------------------------------------ properties linked to the model
    @property
    def in_channels(self) -> int:
        """Input dimension ``d_in`` (64 for 8×8 digits, 784 for 28×28 images)."""
        return 64 if self.source == "sklearn_digits" else 784

    @property
    def out_channels(self) -> int:
        """Output dimension ``d_out``: 10 one-hot classes."""
        return 10

    @property
    def scale(self) -> int:
        """Always 1 (vectors to vectors)."""
        return 1

    @property
    def image_shape(self) -> tuple[int, int]:
        return (8, 8) if self.source == "sklearn_digits" else (28, 28)

    # ------------------------------------------------------------------ loading
    def _load_raw(self) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
        """{"train": (images (N, d_in), labels (N,), max value), "val": ...} before subsetting."""
        if self.source == "sklearn_digits":
            from sklearn.datasets import load_digits

            digits = load_digits()
            x = digits.data.astype(np.float32)
            y = digits.target.astype(np.int64)
            rng = np.random.default_rng(self.seed)
            order = rng.permutation(len(x))
            if self.num_train + self.num_val > len(x):
                raise ValueError(
                    f"sklearn_digits has {len(x)} images; data.num_train + data.num_val = "
                    f"{self.num_train + self.num_val} is too many"
                )
            tr, va = order[: self.num_train], order[self.num_train : self.num_train + self.num_val]
            return {"train": (x[tr], y[tr], 16.0), "val": (x[va], y[va], 16.0)}
        out = {}
        for split, key, count in (("train", "train", self.num_train), ("val", "test", self.num_val)):
            img_name, lab_name = IDX_FILES[key]
            images = read_idx(find_idx_file(self.root, img_name, self.source))  # type: ignore[arg-type]
            labels = read_idx(find_idx_file(self.root, lab_name, self.source))  # type: ignore[arg-type]
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise ValueError(
                    f"{self.source} {key} files: expected images (N, H, W) and labels (N,), got "
                    f"{images.shape} and {labels.shape}"
                )
            if images.shape[1] * images.shape[2] != self.in_channels:
                raise ValueError(f"{self.source} images are {images.shape[1:]}, expected 28x28")
            if count > len(images):
                raise ValueError(f"{self.source} {key} split has {len(images)} images, {count} requested")
            rng = np.random.default_rng(self.seed + (0 if split == "train" else 1))
            idx = np.sort(rng.choice(len(images), size=count, replace=False)) if count else np.zeros(0, int)
            out[split] = (
                images[idx].reshape(count, -1).astype(np.float32),
                labels[idx].astype(np.int64),
                255.0,
            )
        return out

    def _prepare(self, x: np.ndarray, y: np.ndarray, max_value: float) -> tuple[Tensor, Tensor]:
        xt = torch.from_numpy(x).float()
        if self.normalize:
            norms = torch.linalg.vector_norm(xt, dim=1, keepdim=True)
            if (norms == 0).any():
                raise ValueError(f"{self.source}: an all-zero image cannot be normalised to unit norm")
            xt = xt / norms
        else:
            xt = xt / max_value
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"{self.source}: labels must lie in 0..9, got {y.min()}..{y.max()}")
        yt = torch.nn.functional.one_hot(torch.from_numpy(y), num_classes=10).float()
        return xt, yt

    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        for split, (x, y, max_value) in self._load_raw().items():
            self.tensors[split] = self._prepare(x, y, max_value)

    def full_train(self) -> tuple[Tensor, Tensor]:
        """The whole training set ``(X (n, d_in), Y (n, 10))`` (used by the theory monitor)."""
        self.setup()
        return self.tensors["train"]

    def labels(self, split: str = "train") -> Tensor:
        """Integer labels of ``split``."""
        self.setup()
        return self.tensors[split][1].argmax(dim=1)

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        x, y = self.tensors[split]
        if len(x) == 0:
            raise ValueError(f"the {split} split of DigitsDataModule is empty (data.num_val=0?)")
        dataset = _TensorPairs(x, y)
        size = len(x) if self.batch_size is None else min(self.batch_size, len(x))
        if shuffle and size < len(x):
            sampler: Sampler[int] = RandomSampler(dataset, generator=torch.Generator().manual_seed(self.seed))
        else:
            sampler = SequentialSampler(dataset)
        return DataLoader(dataset, sampler=BatchSampler(sampler, size, drop_last=False), batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)
