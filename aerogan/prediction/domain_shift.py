"""Domain-shift guard: per-band summaries of training inputs, compared with each scene to predict.

A model trained on one radiometry (units, processing baseline offset, sensor, season) silently gives
poor output on another. A checkpoint therefore stores a :class:`BandSummary` per input band (mean, std
and the 0.1 / 1 / 50 / 99 / 99.9 percentiles of its valid pixels); at prediction time each scene is
summarised the same way (:func:`summarize_scene`) and compared (:func:`compare_summaries`), and one
:class:`DomainShiftWarning` names every band that falls outside the training range, with the statistic
and both values (:func:`warn_domain_shift`; :func:`check_scene` does all three).

The summaries themselves (:class:`~datamodules.band_summary.BandSummary`, :func:`summarize_scene`) live in
:mod:`datamodules.band_summary`, where the multi-resolution datamodule summarises its training blocks too.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

from datamodules.band_catalog import MultiResolutionScene, normalize_band_name
from datamodules.band_summary import BandSummary, summarize_scene


def _fmt(x: float) -> str:
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.4g}"


def compare_summaries(
    train: Mapping[str, BandSummary], new: Mapping[str, BandSummary], mean_sigmas: float = 3.0
) -> list[str]:
    """One message per band of both ``train`` and ``new`` whose new summary lies outside the training range.

    A band is out of range when its mean is more than ``mean_sigmas`` training stds from the training
    mean, when its 99th percentile exceeds the training 99.9th, or when its 1st percentile is below the
    training 0.1th. Each message names the band, every failing statistic and both values. Bands in only
    one of the two are ignored (the caller checks which bands a model needs).
    """
    messages: list[str] = []
    for band, t in train.items():
        n = new.get(band)
        if n is None:
            continue
        problems: list[str] = []
        diff = n.mean - t.mean
        if abs(diff) > mean_sigmas * t.std:
            sigmas = f"{abs(diff) / t.std:.1f}" if t.std > 0 else "inf"
            problems.append(
                f"mean {_fmt(n.mean)} is {sigmas} training std ({_fmt(t.std)}) from the training mean {_fmt(t.mean)}"
            )
        if n.p99 > t.p999:
            problems.append(f"p99 {_fmt(n.p99)} above the training p99.9 {_fmt(t.p999)}")
        if n.p01 < t.p001:
            problems.append(f"p1 {_fmt(n.p01)} below the training p0.1 {_fmt(t.p001)}")
        if problems:
            messages.append(f"{band}: " + "; ".join(problems))
    return messages


class DomainShiftWarning(UserWarning):
    """A scene's inputs lie outside the range the model was trained on."""


def warn_domain_shift(messages: Sequence[str], where: str, model: str) -> None:
    """One :class:`DomainShiftWarning` listing every message (none when ``messages`` is empty)."""
    if not messages:
        return
    lines = "\n".join(f"  - {m}" for m in messages)
    warnings.warn(
        f"the scene {where} differs from what {model} was trained on, in {len(messages)} band(s):\n{lines}\n"
        "Its output there may be poor. Check the units and radiometric offsets of the inputs; fine-tune on the "
        "scene with `aerogan sharpen --init CKPT`, or predict with consistency projection.",
        DomainShiftWarning,
        stacklevel=2,
    )


def check_scene(
    train: Mapping[str, Mapping[str, float] | BandSummary],
    scene: MultiResolutionScene,
    groups: Sequence[int] | None,
    where: str,
    model: str,
    *,
    boxes: Sequence[tuple[int, int, int, int]] | None = None,
    max_rows: int = 256,
    mean_sigmas: float = 3.0,
) -> list[str]:
    """Summarise the groups of ``scene`` (among ``groups``; None: all) holding bands of ``train``,
    compare, warn once, and return the messages.

    ``train``: per band, a :class:`BandSummary` or its :meth:`~BandSummary.to_dict` form as stored in a
    checkpoint. Band names are matched after :func:`normalize_band_name` (``B5`` = ``B05``); messages use
    the training names. Nothing is read when no group holds a trained band.
    """
    trained = {str(b): (s if isinstance(s, BandSummary) else BandSummary.from_dict(s)) for b, s in train.items()}
    by_norm = {normalize_band_name(b): b for b in trained}
    ks = list(range(len(scene.groups))) if groups is None else [int(k) for k in groups]
    ks = [k for k in ks if any(normalize_band_name(n) in by_norm for n in scene.groups[k].names)]
    if not ks:
        return []
    summaries = summarize_scene(scene, ks, boxes, max_rows)
    new = {by_norm[normalize_band_name(b)]: s for b, s in summaries.items() if normalize_band_name(b) in by_norm}
    messages = compare_summaries(trained, new, mean_sigmas)
    warn_domain_shift(messages, where, model)
    return messages
