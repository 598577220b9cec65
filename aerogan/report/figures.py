"""The report's figures, one function per plot.

Each ``plot_*`` takes the loaded runs and the output folder, writes one PNG (atomically) and returns its path, or
``None`` when the runs hold nothing to draw. Tag names come from :mod:`callbacks.tags`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aerogan.atomic import atomic_output
from aerogan.report.runs import (
    COLORS,
    Run,
    drift_series,
    hidden_top_params,
    layer_names,
    tracked_layers,
)
from callbacks.tags import (
    ADVERSARIAL_TERM,
    SUPERVISED_TERM,
    TERM_COSINE,
    TERM_RATIO,
    TOTAL,
    grad_norm_tag,
    loss_term_tag,
)

__all__ = [
    "FIGURES",
    "new_figure",
    "plot_drift",
    "plot_drift_layers",
    "plot_grad_norms",
    "plot_gram",
    "plot_reaction_diffusion",
    "plot_residual",
    "plot_study",
    "save_figure",
]

#: The optimizer whose gradient norms :func:`plot_grad_norms` draws.
GENERATOR = "generator"


def new_figure(nrows: int, ncols: int, width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    """A matplotlib figure (Agg canvas, no pyplot state) and its (nrows, ncols) axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig: Any, path: Path) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_drift(runs: Sequence[Run], out: Path) -> Path | None:
    """``drift.png``: max and mean per-neuron drift of the hidden and top layer against epoch, per run."""
    hidden, top = layer_names(runs)
    if hidden is None:
        return None
    layers = [hidden] + ([top] if top and top != hidden else [])
    fig, axes = new_figure(1, len(layers))
    drawn = False
    for ax, layer in zip(axes[0], layers, strict=True):
        for run in runs:
            for stat, style in (("max", "-"), ("mean", "--")):
                series = drift_series(run, layer, stat)  # type: ignore[arg-type]
                if series is None:
                    continue
                ax.plot(*series, style, color=run.color, label=f"{run.label}: {stat}")
                drawn = True
        ax.set_xlabel("epoch")
        ax.set_ylabel("per-neuron drift ‖w_j(t) − w_j(0)‖₂")
        ax.set_title(f"{layer}: per-neuron drift from initialisation (rows)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if not drawn:
        return None
    fig.suptitle("Weight drift: supervised vs regularized (solid = max over neurons, dashed = mean)")
    return save_figure(fig, out / "drift.png")


def plot_drift_layers(runs: Sequence[Run], out: Path) -> Path | None:
    """``drift_layers.png``: Frobenius drift ‖W(t) − W(0)‖_F of every tracked layer."""
    fig, axes = new_figure(1, 1, 8, 4.5)
    ax = axes[0, 0]
    styles = ["-", "--", ":", "-."]
    drawn = False
    for run in runs:
        for i, layer in enumerate(tracked_layers(run)):
            series = drift_series(run, layer, "frob")
            if series is None:
                continue
            ax.plot(*series, styles[i % len(styles)], color=run.color, label=f"{run.label}: {layer}")
            drawn = True
    if not drawn:
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel("‖W(t) − W(0)‖_F")
    ax.set_title("Layer drift (Frobenius) of every tracked layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return save_figure(fig, out / "drift_layers.png")


def plot_reaction_diffusion(runs: Sequence[Run], out: Path) -> Path | None:
    """``reaction_diffusion.png``: ‖R‖ and ‖D‖ (top row), ‖D‖/‖R‖ and cos(R, D) (bottom row), total and per layer."""
    if not any(run.scalar(loss_term_tag(SUPERVISED_TERM, TOTAL)) for run in runs):
        return None
    params = [TOTAL, *hidden_top_params(runs, loss_term_tag(SUPERVISED_TERM, ""))]
    fig, axes = new_figure(2, len(params), 5.0, 3.6)
    for j, param in enumerate(params):
        ax, ax2 = axes[0, j], axes[1, j]
        cax = None  # twin axis for the cosine, made on first use
        for run in runs:
            for term, style, word in (
                (SUPERVISED_TERM, "-", "‖R‖ reaction"),
                (ADVERSARIAL_TERM, "--", "‖D‖ diffusion"),
            ):
                s = run.scalar(loss_term_tag(term, param))
                if s is not None:
                    ax.plot(run.step_to_epoch(s[0]), s[1], style, color=run.color, label=f"{run.label}: {word}")
            ratio = run.scalar(loss_term_tag(TERM_RATIO, param))
            cosine = run.scalar(loss_term_tag(TERM_COSINE, param))
            if ratio is not None:
                ax2.plot(run.step_to_epoch(ratio[0]), ratio[1], "-", color=run.color, label=f"{run.label}: ‖D‖/‖R‖")
            if cosine is not None:
                cax = cax if cax is not None else ax2.twinx()
                cax.plot(
                    run.step_to_epoch(cosine[0]), cosine[1], ":", color=run.color, label=f"{run.label}: cos(R, D)"
                )
                cax.set_ylim(-1.05, 1.05)
                cax.set_ylabel("cos(R, D) (dotted)")
        ax.set_yscale("log")
        ax.set_title(f"reaction / diffusion norms: {param}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("gradient norm (before clipping)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        ax2.set_title(f"ratio ‖D‖/‖R‖ and cosine: {param}")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("‖D‖/‖R‖ (solid)")
        ax2.grid(alpha=0.3)
        handles = ax2.get_legend_handles_labels()
        if cax is not None:
            more = cax.get_legend_handles_labels()
            handles = (handles[0] + more[0], handles[1] + more[1])
        if handles[0]:
            ax2.legend(*handles, fontsize=6)
    return save_figure(fig, out / "reaction_diffusion.png")


def plot_grad_norms(runs: Sequence[Run], out: Path) -> Path | None:
    """``grad_norms.png``: the generator optimizer's gradient norm of the hidden and top layer."""
    params = hidden_top_params(runs, grad_norm_tag(GENERATOR, ""))
    if not params:
        return None
    fig, axes = new_figure(1, len(params))
    for ax, param in zip(axes[0], params, strict=True):
        for run in runs:
            s = run.scalar(grad_norm_tag(GENERATOR, param))
            if s is not None:
                ax.plot(run.step_to_epoch(s[0]), s[1], color=run.color, label=run.label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("‖∇ generator loss‖ (optimizer gradient)")
        ax.set_title(f"gradient norm: {param}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, out / "grad_norms.png")


def plot_residual(runs: Sequence[Run], out: Path) -> Path | None:
    """``residual.png``: ‖z(t) − y‖ with the supervised reference curves, hidden-layer drift, path length vs drift."""
    theory = [r for r in runs if r.theory is not None]
    if not theory:
        return None
    fig, axes = new_figure(1, 3, 5.2, 4.0)
    ax, axd, axp = axes[0]
    for run in theory:
        th = run.theory
        assert th is not None
        ax.plot(th["t"], th["residual"], color=run.color, lw=2, label=f"{run.label}: ‖z(t) − y‖")
        if "u_path_length" in th and np.isfinite(th["u_path_length"]).any():
            axp.plot(th["t"], th["u_path_length"], color=run.color, label=f"{run.label}: path Σ‖U_(k+1) − U_k‖_F")
            axp.plot(th["t"], th["u_drift_frob"], "--", color=run.color, label=f"{run.label}: net ‖U(t) − U(0)‖_F")
        if run.objective == "supervised" or len(theory) == 1:
            ax.plot(
                th["t"], th["residual_bound_dout"], "--", color="0.3",
                label="exp(−λ0 t/(2 d_out)) ‖z(0) − y‖ (rate for d_out outputs)",
            )  # fmt: skip
            ax.plot(
                th["t"], th["residual_bound"], ":", color="0.5", label="exp(−λ0 t/2) ‖z(0) − y‖ (as stated for d_out = 1)"
            )
        axd.plot(th["t"], th["u_drift_max"], color=run.color, label=f"{run.label}: max_j ‖u_j(t) − u_j(0)‖")
        axd.plot(th["t"], th["u_drift_mean"], "--", color=run.color, label=f"{run.label}: mean_j")
    ax.set_xlabel("gradient-flow time t = Σ lr (full-batch steps × lr)")
    ax.set_ylabel("training residual ‖z(t) − y‖ (log scale)")
    ax.set_yscale("log")
    ax.set_title("Training residual and the supervised reference curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    axd.set_xlabel("gradient-flow time t")
    axd.set_ylabel("per-neuron drift of U")
    axd.set_title("Hidden-layer drift against t (Thm. 1 bound: see report.md)")
    axd.grid(alpha=0.3)
    axd.legend(fontsize=7)
    axp.set_xlabel("gradient-flow time t")
    axp.set_ylabel("hidden-layer movement (log scale)")
    axp.set_yscale("log")
    axp.set_title("Path length (what the drift bounds bound) vs net drift")
    axp.grid(alpha=0.3)
    if axp.lines:
        axp.legend(fontsize=7)
    return save_figure(fig, out / "residual.png")


def plot_gram(runs: Sequence[Run], out: Path) -> Path | None:
    """``gram.png``: λ_min(H(t)) against λ0/2, flipped activation patterns, critic gradient at the predictions."""
    theory = [r for r in runs if r.theory is not None]
    if not theory:
        return None
    fig, axes = new_figure(1, 3, 5.0, 3.8)
    for run in theory:
        th = run.theory
        assert th is not None
        axes[0, 0].plot(th["epoch"], th["lambda_min_H"], color=run.color, label=f"{run.label}: λ_min(H(t))")
        axes[0, 1].plot(th["epoch"], th["flip_fraction"], color=run.color, label=run.label)
        if np.isfinite(th.get("critic_grad_z_mean", np.array([np.nan]))).any():
            axes[0, 2].plot(th["epoch"], th["critic_grad_z_mean"], color=run.color, label=f"{run.label}: mean ‖∇_z g‖")
    lam0 = float(theory[0].theory["lambda0"][0])  # type: ignore[index]
    axes[0, 0].axhline(lam0 / 2, color="0.3", ls="--", label=f"λ0/2 = {lam0 / 2:.3g}")
    axes[0, 0].set_title("Gram matrix health: λ_min(H(t)) vs λ0/2")
    axes[0, 0].set_ylabel("eigenvalue")
    axes[0, 1].set_title("ReLU activation patterns flipped since t = 0")
    axes[0, 1].set_ylabel("fraction of (sample, neuron) pairs")
    axes[0, 2].set_title("Critic gradient at the predictions")
    axes[0, 2].set_ylabel("mean_p ‖∇_z g(z_p)‖")
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return save_figure(fig, out / "gram.png")


def plot_study(rows: Sequence[dict[str, Any]], summaries: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """``study_epochs.png`` (epochs to threshold per architecture and objective) and ``study_curves.png``."""
    paths = []
    fig, axes = new_figure(1, 1, 9, 4.5)
    ax = axes[0, 0]
    x = np.arange(len(rows))
    for k, obj in enumerate(("supervised", "regularized")):
        vals, capped = [], []
        for r in rows:
            med, cap = r[f"{obj}_median"], r[f"{obj}_cap"]
            vals.append(med if med is not None else (cap or 0))
            capped.append(med is None)
        bars = ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, color=COLORS[obj], label=obj)
        for bar, hatch in zip(bars, capped, strict=True):
            if hatch:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
    ax.set_xticks(x, [r["name"].split(" (")[0] for r in rows], rotation=15, fontsize=8)
    ax.set_ylabel("epochs to the validation-RMSE threshold")
    ax.set_title("Epochs to threshold (hatched: not reached within the epoch cap)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    paths.append(save_figure(fig, out / "study_epochs.png"))

    archs = list(dict.fromkeys(s["architecture"] for s in summaries))
    cols = min(3, len(archs)) or 1
    nrows = math.ceil(len(archs) / cols) or 1
    fig, axes = new_figure(nrows, cols, 4.6, 3.4)
    for i, arch in enumerate(archs):
        ax = axes[i // cols, i % cols]
        for s in summaries:
            if s["architecture"] != arch or not s.get("history"):
                continue
            ep = [h["epoch"] for h in s["history"]]
            val = [h["value"] for h in s["history"]]
            ax.plot(ep, val, color=COLORS.get(s["objective"]), label=f"{s['objective']} (seed {s.get('seed')})")
        thr = next((s["threshold"] for s in summaries if s["architecture"] == arch), None)
        if thr is not None:
            ax.axhline(thr, color="0.3", ls="--", label=f"threshold {thr:.4g}")
        ax.set_yscale("log")
        ax.set_title(arch)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation RMSE")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for j in range(len(archs), nrows * cols):
        axes[j // cols, j % cols].set_visible(False)
    paths.append(save_figure(fig, out / "study_curves.png"))
    return paths


#: The run figures, in report order (the study figures come with the study section).
FIGURES = (plot_drift, plot_drift_layers, plot_reaction_diffusion, plot_grad_norms, plot_residual, plot_gram)
