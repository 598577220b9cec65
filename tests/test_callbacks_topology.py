"""TopologySnapshot (files, schedule, θ0 sources, GAN layers) and TensorBoard tags of all callbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_callbacks_models import MLP, TinyGAN, make_trainer

from callbacks import CapacityMonitor, GradientNormMonitor, TopologySnapshot, WeightDriftMonitor
from callbacks._layers import weight_layers
from callbacks.topology import _embedding_figure, _tiles_figure, _top_drift_figure

# expected when a test runs without TensorBoard; asserted where it matters
pytestmark = pytest.mark.filterwarnings("ignore:.*no TensorBoardLogger in:UserWarning")


def test_snapshot_schedule_and_npz_contents(tmp_path) -> None:
    model = MLP()
    topology = TopologySnapshot(every_n_epochs=2, top_k=4, max_neurons=9, modules=["net.0"])
    make_trainer(tmp_path, max_epochs=5, limit_train_batches=2, callbacks=[topology]).fit(model)

    folder = tmp_path / "topology"
    epochs = (0, 2, 4, 5)  # t = 0, every 2 epochs, last
    pngs = {p.name for p in folder.glob("*.png")}
    assert pngs == {
        f"net.0_{k}_epoch{e:04d}.png" for e in epochs for k in ("tiles", "top_drift", "embedding")
    }
    assert {p.name for p in folder.glob("*.npz")} == {f"net.0_epoch{e:04d}.npz" for e in epochs}

    first = np.load(folder / "net.0_epoch0000.npz")
    last = np.load(folder / "net.0_epoch0005.npz")
    assert int(last["epoch"]) == 5 and int(last["step"]) == 10
    np.testing.assert_array_equal(first["drift"], np.zeros(16, dtype=np.float32))
    np.testing.assert_array_equal(last["theta0"], first["weight"])
    np.testing.assert_array_equal(last["weight"], model.net[0].weight.detach().numpy())
    expected = np.linalg.norm(last["weight"] - last["theta0"], axis=1)
    np.testing.assert_allclose(last["drift"], expected, rtol=1e-5)
    assert list(last["top_neurons"]) == list(np.argsort(-expected)[:4])
    np.testing.assert_array_equal(last["tile_neurons"], np.arange(9))
    # neurons coloured by the class they feed most: argmax over the columns of the next layer V
    np.testing.assert_array_equal(last["classes"], model.net[2].weight.detach().argmax(dim=0).numpy())
    assert last["embedding"].shape == (16, 2) and last["embedding_theta0"].shape == (16, 2)
    assert topology.last_files and all(f.endswith((".png", ".npz")) for f in topology.last_files)


def test_title_style_and_reference_from_weight_drift(tmp_path) -> None:
    drift = WeightDriftMonitor(every_n_steps=10)
    topology = TopologySnapshot(every_n_epochs=10, top_k=3, max_neurons=4, embedding=False)
    # topology first in the list: it must not depend on the callback order
    make_trainer(tmp_path, max_epochs=2, limit_train_batches=2, callbacks=[topology, drift]).fit(MLP())
    assert topology._theta0 == {}  # no second copy of θ0: it reads the monitor's
    last = np.load(tmp_path / "topology" / "net.0_epoch0002.npz")
    np.testing.assert_allclose(last["drift"], drift.per_neuron_drift()["net.0"].numpy(), rtol=1e-6)
    j = int(last["top_neurons"][0])
    assert f"u_{j}, {last['drift'][j]:.2g}" == f"u_{j}, {float(last['drift'].max()):.2g}"
    assert f"u_{2571}, {0.00049:.2g}" == "u_2571, 0.00049"  # the paper's title format


def test_gan_auto_selection(tmp_path) -> None:
    topology = TopologySnapshot(every_n_epochs=10, top_k=2, max_neurons=4, embedding=False)
    make_trainer(tmp_path, max_epochs=1, limit_train_batches=2, callbacks=[topology]).fit(TinyGAN())
    # first conv of each child, plus the Linear layers whose input is a square (64 = 8x8, 16 = 4x4)
    assert list(topology._layers) == ["generator.0", "critic.0", "critic.3", "critic.5"]
    assert len(list((tmp_path / "topology").glob("*.png"))) == 4 * 2 * 2


def test_boring_model_falls_back_to_first_layer(tmp_path) -> None:
    topology = TopologySnapshot(every_n_epochs=1, top_k=1, max_neurons=2)
    make_trainer(tmp_path, max_epochs=1, limit_train_batches=2, callbacks=[topology]).fit(BoringModel())
    assert list(topology._layers) == ["layer"]  # in_features 32 is not a square: drawn as 1x32 strips
    assert (tmp_path / "topology" / "layer_tiles_epoch0001.png").is_file()


@pytest.mark.parametrize(
    "kwargs", [{"every_n_epochs": 0}, {"top_k": -1}, {"max_neurons": 0}, {"modules": ""}]
)
def test_invalid_arguments(kwargs) -> None:
    with pytest.raises(MisconfigurationException):
        TopologySnapshot(**kwargs)


def test_tensorboard_tags_of_all_callbacks(tmp_path) -> None:
    logger = TensorBoardLogger(tmp_path, name="tb", default_hp_metric=False)
    callbacks = [
        GradientNormMonitor(every_n_steps=2, log_histograms=True),
        WeightDriftMonitor(every_n_steps=2),
        TopologySnapshot(every_n_epochs=1, top_k=2, max_neurons=4, modules=["net.0"]),
        CapacityMonitor(),
    ]
    make_trainer(tmp_path, max_epochs=2, limit_train_batches=2, logger=logger, callbacks=callbacks).fit(MLP())

    events = EventAccumulator(logger.log_dir)
    events.Reload()
    tags = events.Tags()
    assert {"grad_norm/net/total", "grad_norm/net/net.0.weight", "grad_norm/net/nonfinite_count"} <= set(
        tags["scalars"]
    )
    assert {"weight_drift/net.0/frobenius", "weight_drift/net.2/top1", "capacity/total"} <= set(
        tags["scalars"]
    )
    assert {"weight_drift/net.0/per_neuron", "grad_hist/net/net.0.weight"} <= set(tags["histograms"])
    assert {"topology/net.0/tiles", "topology/net.0/top_drift", "topology/net.0/embedding"} <= set(
        tags["images"]
    )
    # cadence steps, plus the final values: the last batch's gradients (3), the final weights' drift (4)
    assert [e.step for e in events.Scalars("grad_norm/net/total")] == [0, 2, 3]
    assert [e.step for e in events.Scalars("weight_drift/net.0/frobenius")] == [0, 2, 4]
    assert [e.step for e in events.Images("topology/net.0/tiles")] == [0, 2, 4]
    assert (tmp_path / "tb" / "version_0" / "weight_drift.csv").is_file()


def test_figures_do_not_leak() -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    model = MLP()
    topology = TopologySnapshot(max_neurons=4, top_k=2)
    layers = weight_layers(model)
    topology._layers = {"net.0": layers["net.0"]}
    data = topology._prepare(
        "net.0", layers["net.0"], layers["net.0"].param.detach() + 0.1 * torch.randn(16, 64)
    )
    for image in (
        _tiles_figure("net.0", data),
        _top_drift_figure("net.0", data),
        _embedding_figure("net.0", data, 0),
    ):
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert len(plt.get_fignums()) == before


def test_tile_grid_gives_each_tile_its_own_colour_scale_and_title() -> None:
    """The grid draws every tile in one axes; each keeps its own colour scale (as one subplot per tile did)."""
    from callbacks.topology import _grid, _new_figure

    rng = np.random.default_rng(0)
    tiles = np.stack([rng.normal(size=(3, 3)) * scale for scale in (1e-3, 1.0, 1e3)] + [rng.normal(size=(3, 3))])
    tiles[3, 1, 1] = np.nan  # drawn as 0, not as a hole in the scale
    strip = rng.normal(size=(2, 1, 7))  # 1 x d strips fill their cell
    fig = _new_figure(4, 4)
    _grid(fig, 4, tiles, [f"u_{j}" for j in range(4)], "neurons")
    (ax,) = fig.axes
    assert len(ax.images) == 4
    for image, tile in zip(ax.images, tiles, strict=True):
        clean = np.nan_to_num(tile, nan=0.0)
        assert image.get_clim() == pytest.approx((clean.min(), clean.max()))
    assert [t.get_text() for t in ax.texts] == ["u_0", "u_1", "u_2", "u_3"]
    # cells do not overlap: every tile's extent is disjoint from the others'
    boxes = [im.get_extent() for im in ax.images]
    for i, (x0, x1, y1, y0) in enumerate(boxes):
        assert x1 > x0 and y1 > y0
        for a0, a1, b1, b0 in boxes[i + 1:]:
            assert x1 <= a0 or a1 <= x0 or y1 <= b0 or b1 <= y0
    fig2 = _new_figure(4, 4)
    _grid(fig2, 2, strip, ["a", "b"], "strips")
    x0, x1, y1, y0 = fig2.axes[0].images[0].get_extent()
    assert x1 - x0 == pytest.approx(y1 - y0)  # a strip is stretched over its whole (square) cell
