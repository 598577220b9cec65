"""DigitsDataModule: the embedded 8×8 digits, IDX reading (gzipped and raw) for MNIST / Fashion-MNIST, errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules import DigitsDataModule
from datamodules.digits import IDX_FILES, read_idx


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    dtype = np.dtype(">i4") if array.dtype.kind == "i" and array.dtype.itemsize == 4 else np.dtype(np.uint8)
    header = bytes([0, 0, codes[dtype], array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    raw = header + array.astype(dtype).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def _fake_mnist(
    folder: Path, gz: bool, n_train: int = 30, n_test: int = 20, seed: int = 0
) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(1, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        img_name, lab_name = IDX_FILES[split]
        _write_idx(folder / img_name, images, gz)
        _write_idx(folder / lab_name, labels, gz)
        out[split] = (images, labels)
    return out


def test_sklearn_digits_default() -> None:
    dm = DigitsDataModule(num_train=50, num_val=20, seed=1)
    assert (dm.in_channels, dm.out_channels, dm.scale) == (64, 10, 1)
    batches = list(dm.train_dataloader())
    assert len(batches) == 1  # full batch
    x, y = batches[0]["input"], batches[0]["target"]
    assert x.shape == (50, 64) and y.shape == (50, 10) and x.dtype == torch.float32
    assert torch.allclose(x.norm(dim=1), torch.ones(50), atol=1e-5)  # ‖x‖ = 1
    assert torch.equal(y.sum(1), torch.ones(50)) and set(y.unique().tolist()) == {0.0, 1.0}  # one-hot
    vx = next(iter(dm.val_dataloader()))["input"]
    assert vx.shape == (20, 64)
    # disjoint subsets, reproducible by seed, different for another seed
    assert not (torch.cdist(x, vx) < 1e-6).any()
    assert torch.equal(DigitsDataModule(num_train=50, num_val=20, seed=1).full_train()[0], x)
    assert not torch.equal(DigitsDataModule(num_train=50, num_val=20, seed=2).full_train()[0], x)


def test_minibatches_and_unnormalised() -> None:
    dm = DigitsDataModule(num_train=10, num_val=5, batch_size=4, normalize=False)
    sizes = [b["input"].shape[0] for b in dm.train_dataloader()]
    assert sizes == [4, 4, 2]
    x = dm.full_train()[0]
    assert float(x.max()) <= 1.0 and float(x.min()) >= 0.0


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files(tmp_path: Path, gz: bool) -> None:
    data = _fake_mnist(tmp_path, gz)
    dm = DigitsDataModule(source="mnist", root=str(tmp_path), num_train=12, num_val=5, seed=0)
    assert dm.in_channels == 784
    x, y = dm.full_train()
    assert x.shape == (12, 784) and y.shape == (12, 10)
    assert torch.allclose(x.norm(dim=1), torch.ones(12), atol=1e-5)
    # every loaded sample is one of the file's images, with its label
    images, labels = data["train"]
    flat = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32))
    flat = flat / flat.norm(dim=1, keepdim=True)
    idx = torch.cdist(x, flat).argmin(1)
    assert torch.allclose(x, flat[idx], atol=1e-6)
    assert torch.equal(y.argmax(1), torch.from_numpy(labels[idx.numpy()].astype(np.int64)))
    assert next(iter(dm.val_dataloader()))["input"].shape == (5, 784)  # from the t10k files


def test_fashion_mnist_torchvision_layout(tmp_path: Path) -> None:
    _fake_mnist(tmp_path / "FashionMNIST" / "raw", gz=True)
    dm = DigitsDataModule(source="fashion_mnist", root=str(tmp_path), num_train=6, num_val=3)
    assert dm.full_train()[0].shape == (6, 784)


def test_read_idx_roundtrip_int32(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    path = _write_idx(tmp_path / "a-idx3-int", array, gz=False)
    out = read_idx(path)
    assert out.dtype == np.dtype(np.int32) and np.array_equal(out, array)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_missing_files_error_names_folder_and_files(tmp_path: Path) -> None:
    dm = DigitsDataModule(source="mnist", root=str(tmp_path), num_train=5, num_val=2)
    with pytest.raises(FileNotFoundError) as err:
        dm.setup()
    message = str(err.value)
    assert str(tmp_path) in message
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert name in message
    with pytest.raises(ValueError, match="needs data.root"):
        DigitsDataModule(source="mnist")
