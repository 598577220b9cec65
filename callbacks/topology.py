r"""
Topology Snapshot
=================

Pictures of what the hidden neurons look like and how they moved from initialisation: neuron weight vectors
as image tiles, the neurons that drifted most, and a 2-D embedding of all neuron weight vectors.

"""

from __future__ import annotations

import math
import os
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks.callback import Callback
from torch import Tensor, nn
from typing_extensions import override

from callbacks._layers import WeightLayer, capture, is_square, neuron_rows, weight_layers
from callbacks._logging import (
    current_step,
    run_folder,
    tensorboard_writer,
    validate_int_args,
    validate_modules_arg,
    warn_if_no_tensorboard,
    warn_once,
)
from callbacks.tags import topology_tag
from callbacks.weight_drift import WeightDriftMonitor

__all__ = ["TopologySnapshot"]

_DPI = 80


class TopologySnapshot(Callback):
    r"""Draw neuron weight vectors, the most-drifted neurons and a neuron embedding at chosen epochs.

    Snapshots are taken before training (``on_train_start`` of a fresh run: "epoch 0", the t = 0 picture),
    after every ``every_n_epochs``-th epoch and at the end of training (``on_train_end``); the file suffix
    ``epoch{E:04d}`` counts completed epochs. For each selected layer ``<layer>`` (module name) a snapshot
    writes, on rank zero only:

    - ``tiles``: the first ``max_neurons`` neurons as image tiles (jet colormap, one colour scale per tile). A
      Linear layer whose ``in_features`` is a perfect square (784 → 28×28, 64 → 8×8) is drawn as a square
      image per neuron, any other Linear as a ``1 × in_features`` strip; a convolution as a filter grid, one
      tile per output channel showing the kernel averaged over its input channels.
    - ``top_drift``: the ``top_k`` neurons that moved most from θ0, titled ``"u_<j>, <drift>"`` (neuron index,
      ``‖w_j − w_j(0)‖₂`` with two significant digits, e.g. ``u_2571, 0.00049``).
    - ``embedding`` (if ``embedding``): the 2-D PCA (SVD of the centred neuron matrix, no scikit-learn) of all
      neuron weight vectors, θ0 projected into the same axes in grey; points are coloured by the class each
      neuron feeds most, ``argmax_i V[i, j]`` when the next Linear layer ``V`` takes this layer's outputs,
      else one colour.

    Files: ``<run folder>/topology/<layer>_<figure>_epoch{E:04d}.png`` and ``<layer>_epoch{E:04d}.npz`` (arrays
    ``weight``, ``theta0``, ``drift``, ``tile_neurons``, ``top_neurons``, ``embedding``, ``embedding_theta0``,
    ``classes`` and ``epoch``, ``step``); TensorBoard images ``topology/<layer>/<figure>`` at the batch step
    (if a TensorBoard logger is attached; otherwise a one-time warning and only files). The run folder is the
    first logger's ``log_dir`` (TensorBoard/CSV) or ``save_dir``, else ``trainer.default_root_dir``.

    Layers: with ``modules=None``, every Linear layer with a perfect-square ``in_features`` plus the first
    convolution of each direct child of the LightningModule (falling back to the first weight layer if that
    selects nothing); with ``modules``, every Linear/convolution layer in the named submodules.

    θ0 is taken from a :class:`~callbacks.WeightDriftMonitor` in ``trainer.callbacks`` that tracks the layer,
    else captured in ``on_fit_start`` and kept in this callback's ``state_dict`` so a resumed run keeps it.
    Figures use matplotlib's object API with the Agg canvas (no pyplot state, no global backend switch, nothing
    left open).

    Args:
        every_n_epochs: snapshot every this many epochs (plus the t = 0 and final snapshots).
        top_k: number of most-drifted neurons drawn.
        max_neurons: number of neurons drawn as tiles (the first ones, so pictures are comparable over time).
        embedding: draw the PCA embedding.
        modules: names of submodules whose Linear/convolution layers are drawn; ``None`` selects automatically.
        enabled: ``False`` turns every hook into a no-op: no images, no ``topology/`` folder (how ``aerogan fit
            --monitors.topology.enabled false`` switches the monitor off).

    Raises:
        MisconfigurationException:
            If ``every_n_epochs < 1``, ``top_k < 0``, ``max_neurons < 1`` or an entry of ``modules`` matches no
            submodule (at fit start).

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from callbacks import TopologySnapshot, WeightDriftMonitor
        >>> trainer = Trainer(callbacks=[WeightDriftMonitor(), TopologySnapshot(every_n_epochs=5)])

    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        top_k: int = 9,
        max_neurons: int = 64,
        embedding: bool = True,
        modules: list[str] | None = None,
        enabled: bool = True,
    ) -> None:
        validate_int_args(("every_n_epochs", every_n_epochs, 1), ("top_k", top_k, 0), ("max_neurons", max_neurons, 1))
        self.modules = validate_modules_arg(modules, type(self).__name__)
        self.every_n_epochs = every_n_epochs
        self.top_k = top_k
        self.max_neurons = max_neurons
        self.embedding = bool(embedding)
        self.enabled = bool(enabled)

        #: Paths written by the last snapshot (rank zero).
        self.last_files: list[str] = []
        self._layers: dict[str, WeightLayer] = {}
        self._next_linear: dict[str, WeightLayer] = {}
        self._theta0: dict[str, Tensor] = {}
        self._drift_monitors: dict[str, WeightDriftMonitor] = {}
        self._last_step: int | None = None
        self._batches_seen = 0

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(modules=self.modules)

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            self._layers = {}
            return
        all_layers = weight_layers(pl_module, None)
        self._layers = self._select(pl_module, all_layers)
        if not self._layers:
            warn_once(self, "no_layers", f"{type(self).__name__}: no Linear/Conv layer to draw.")
        self._next_linear = _next_linear_layers(all_layers)
        monitors = [cb for cb in trainer.callbacks if isinstance(cb, WeightDriftMonitor)]  # type: ignore[attr-defined]
        self._drift_monitors = {}
        own: dict[str, WeightLayer] = {}
        for name, layer in self._layers.items():
            monitor = next((m for m in monitors if m.covers(name)), None)
            if monitor is not None and name not in self._theta0:
                self._drift_monitors[name] = monitor
            else:
                own[name] = layer
        self._theta0 = capture(own, self._theta0)
        warn_if_no_tensorboard(self, trainer, "topology images")

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if current_step(trainer, self._batches_seen) == 0:  # a fresh run: the t = 0 picture
            self._snapshot(trainer, epoch=0)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batches_seen += 1

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        completed = trainer.current_epoch + 1
        if completed % self.every_n_epochs == 0:
            self._snapshot(trainer, epoch=completed)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # runs before the strategy's teardown moves the model to the CPU
        self._snapshot(trainer, epoch=trainer.current_epoch)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "theta0": dict(self._theta0),
            "batches_seen": self._batches_seen,
            "last_step": self._last_step,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._theta0 = dict(state_dict.get("theta0", {}))
        self._batches_seen = int(state_dict.get("batches_seen", 0))
        self._last_step = state_dict.get("last_step")

    # ------------------------------------------------------------------ internals

    def _select(self, pl_module: nn.Module, all_layers: dict[str, WeightLayer]) -> dict[str, WeightLayer]:
        if self.modules is not None:
            return weight_layers(pl_module, self.modules, owner=type(self).__name__)
        chosen = {
            n: layer for n, layer in all_layers.items() if layer.kind == "linear" and is_square(layer.fan_in)
        }
        firsts: dict[str, str] = {}
        for name, layer in all_layers.items():
            if layer.kind == "conv":
                firsts.setdefault(name.split(".", 1)[0] if "." in name else "", name)
        chosen.update({n: all_layers[n] for n in firsts.values()})
        if not chosen and all_layers:
            first = next(iter(all_layers))
            chosen = {first: all_layers[first]}
        return {n: all_layers[n] for n in all_layers if n in chosen}  # model order

    def _reference(self, name: str) -> Tensor | None:
        monitor = self._drift_monitors.get(name)
        ref = monitor.reference(name) if monitor is not None else None
        return ref if ref is not None else self._theta0.get(name)

    def _snapshot(self, trainer: pl.Trainer, epoch: int) -> None:
        step = current_step(trainer, self._batches_seen)
        if not self.enabled or self._last_step == step or not self._layers:
            return
        self._last_step = step
        if not trainer.is_global_zero:  # drawing is rank zero's job; nothing collective happens here
            return
        folder = os.path.join(run_folder(trainer), "topology")
        os.makedirs(folder, exist_ok=True)
        writer = tensorboard_writer(trainer)
        self.last_files = []
        for name, layer in self._layers.items():
            ref = self._reference(name)
            if ref is None:
                continue
            data = self._prepare(name, layer, ref)
            figures = {"tiles": _tiles_figure(name, data)}
            if self.top_k:
                figures["top_drift"] = _top_drift_figure(name, data)
            if self.embedding and data["embedding"] is not None:
                figures["embedding"] = _embedding_figure(name, data, epoch)
            for fig_name, image in figures.items():
                path = os.path.join(folder, f"{name}_{fig_name}_epoch{epoch:04d}.png")
                _save_png(path, image)
                self.last_files.append(path)
                if writer is not None:
                    writer.add_image(
                        topology_tag(name, fig_name), image, global_step=step, dataformats="HWC"
                    )
            npz = os.path.join(folder, f"{name}_epoch{epoch:04d}.npz")
            arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray) and k != "tiles"}
            np.savez(npz, epoch=epoch, step=step, **arrays)
            self.last_files.append(npz)

    @torch.no_grad()
    def _prepare(self, name: str, layer: WeightLayer, ref: Tensor) -> dict[str, Any]:
        w = layer.param.detach().float().cpu()
        w0 = ref.detach().float().cpu()
        rows = neuron_rows(w, layer.neuron_dim)
        rows0 = neuron_rows(w0, layer.neuron_dim)
        drift = torch.linalg.vector_norm(rows - rows0, dim=1)
        n = rows.shape[0]
        tile_neurons = np.arange(min(self.max_neurons, n))
        finite = torch.nan_to_num(drift, nan=-1.0, posinf=-1.0)
        top = torch.topk(finite, min(self.top_k, n)).indices.numpy()
        tiles = _tile_images(w, layer)
        classes = None
        nxt = self._next_linear.get(name)
        if nxt is not None:
            classes = nxt.param.detach().float().cpu().argmax(dim=0).numpy()
        emb = emb0 = None
        if self.embedding:
            emb, emb0 = _pca_2d(rows, rows0)
        return {
            "weight": w.numpy(),
            "theta0": w0.numpy(),
            "drift": drift.numpy(),
            "tile_neurons": tile_neurons,
            "top_neurons": top,
            "tiles": tiles,
            "embedding": emb,
            "embedding_theta0": emb0,
            "classes": classes if classes is not None else np.zeros(n, dtype=np.int64),
            "has_classes": classes is not None,
            "kind": layer.kind,
        }


# ---------------------------------------------------------------------- arrays


def _next_linear_layers(layers: dict[str, WeightLayer]) -> dict[str, WeightLayer]:
    """For each Linear layer, the next Linear layer (model order) whose input width is its output width."""
    linears = [layer for layer in layers.values() if layer.kind == "linear"]
    out = {}
    for i, layer in enumerate(linears[:-1]):
        nxt = linears[i + 1]
        if nxt.fan_in == layer.num_neurons:
            out[layer.name] = nxt
    return out


def _tile_images(weight: Tensor, layer: WeightLayer) -> np.ndarray:
    """One 2-D image per neuron: ``(n, h, w)``."""
    if layer.kind == "linear":
        d = layer.fan_in
        side = math.isqrt(d)
        shape = (side, side) if is_square(d) else (1, d)
        return weight.reshape(-1, *shape).numpy()
    w = weight.movedim(layer.neuron_dim, 0)  # (out, in, *kernel)
    w = w.mean(dim=1)  # average over input channels -> (out, *kernel)
    while w.dim() > 3:  # 3-D kernels: average over depth
        w = w.mean(dim=1)
    if w.dim() == 2:  # 1-D kernels -> strips
        w = w.unsqueeze(1)
    return w.numpy()


def _pca_2d(rows: Tensor, rows0: Tensor) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Project the neuron rows (and θ0's rows) on the top two principal axes of the current rows."""
    x = rows.double()
    ok = torch.isfinite(x).all(dim=1)
    if int(ok.sum()) < 3:
        return None, None
    mean = x[ok].mean(dim=0)
    xc = x[ok] - mean
    n, d = xc.shape
    if d <= n:
        _, vecs = torch.linalg.eigh(xc.T @ xc)
        comps = vecs[:, -2:].flip(1).T  # (≤2, d), largest first
    else:
        _, vecs = torch.linalg.eigh(xc @ xc.T)
        comps = (xc.T @ vecs[:, -2:].flip(1)).T
        comps = comps / torch.linalg.vector_norm(comps, dim=1, keepdim=True).clamp_min(1e-30)
    if comps.shape[0] < 2:
        comps = torch.cat([comps, torch.zeros(2 - comps.shape[0], d, dtype=comps.dtype)])
    # deterministic signs: the largest loading of each axis is positive
    signs = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True))).clamp_min(0) * 2 - 1
    comps = comps * signs
    emb = torch.full((x.shape[0], 2), float("nan"), dtype=torch.float64)
    emb[ok] = xc @ comps.T
    emb0 = (torch.nan_to_num(rows0.double()) - mean) @ comps.T
    return emb.float().numpy(), emb0.float().numpy()


# ---------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _render(fig: Any) -> np.ndarray:
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    fig.clear()
    return image


def _save_png(path: str, image: np.ndarray) -> None:
    from matplotlib.image import imsave

    imsave(path, image)


def _grid(fig: Any, count: int, images: np.ndarray, titles: list[str], suptitle: str) -> None:
    """``count`` tiles in a grid of cells, each titled and on its own colour scale (jet), in one axes.

    One axes with an image per tile: a subplot per tile drew the same picture at ~25 ms a tile (1.7 s for 64),
    most of it axes, ticks and spines nobody looks at; this takes a tenth of that.
    """
    cols = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / cols))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96 - 0.4 / fig.get_figheight()))
    ax.set_axis_off()
    cell, gap, title = 1.0, 0.12, 0.22  # cell side, gap between cells and title height, in cell units
    for i in range(count):
        img = np.nan_to_num(images[i], nan=0.0, posinf=0.0, neginf=0.0)
        r, c = divmod(i, cols)
        x0, y0 = c * (cell + gap) + gap / 2, r * (cell + gap + title) + title
        h, w = img.shape
        if h == 1:  # a strip fills its cell
            dx, dy = cell, cell
        else:  # kept square pixels, centred in the cell
            scale = cell / max(h, w)
            dx, dy = w * scale, h * scale
        x, y = x0 + (cell - dx) / 2, y0 + (cell - dy) / 2
        ax.imshow(img, cmap="jet", interpolation="nearest", extent=(x, x + dx, y + dy, y), aspect="auto")
        ax.text(x0 + cell / 2, y0 - 0.03, titles[i], fontsize=7, ha="center", va="bottom")
    ax.set_xlim(0, cols * (cell + gap))
    ax.set_ylim(rows * (cell + gap + title), 0)
    ax.set_aspect("equal", anchor="N")  # square cells
    fig.suptitle(suptitle, fontsize=8)


def _grid_size(count: int) -> tuple[float, float]:
    cols = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / cols))
    return min(1.1 * cols, 14.0), min(1.1 * rows + 0.4, 14.0)


def _tiles_figure(name: str, data: dict[str, Any]) -> np.ndarray:
    idx = data["tile_neurons"]
    fig = _new_figure(*_grid_size(len(idx)))
    _grid(fig, len(idx), data["tiles"][idx], [f"u_{j}" for j in idx], f"{name}: neurons")
    return _render(fig)


def _top_drift_figure(name: str, data: dict[str, Any]) -> np.ndarray:
    idx = data["top_neurons"]
    fig = _new_figure(*_grid_size(max(len(idx), 1)))
    titles = [f"u_{j}, {data['drift'][j]:.2g}" for j in idx]
    _grid(fig, len(idx), data["tiles"][idx], titles, f"{name}: largest drift from θ0")
    return _render(fig)


def _embedding_figure(name: str, data: dict[str, Any], epoch: int) -> np.ndarray:
    fig = _new_figure(4.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    emb, emb0 = data["embedding"], data["embedding_theta0"]
    ax.scatter(emb0[:, 0], emb0[:, 1], s=6, c="0.8", label="θ0", linewidths=0)
    if data["has_classes"]:
        classes = data["classes"]
        for c in np.unique(classes):
            sel = classes == c
            ax.scatter(emb[sel, 0], emb[sel, 1], s=8, color=_color(int(c)), label=f"class {c}", linewidths=0)
        ax.legend(fontsize=5, markerscale=1.5, loc="best", ncol=2)
    else:
        ax.scatter(emb[:, 0], emb[:, 1], s=8, color=_color(0), linewidths=0)
    ax.set_xlabel("PC 1", fontsize=7)
    ax.set_ylabel("PC 2", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_title(f"{name}: neuron embedding, epoch {epoch}", fontsize=8)
    return _render(fig)


def _color(i: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10" if i < 10 else "tab20"](i % 20)
