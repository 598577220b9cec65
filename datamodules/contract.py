"""What a super-resolution datamodule promises: the members :class:`aerogan.SuperResolution` and the CLI read.

:class:`SuperResolutionData` lists them as a :class:`typing.Protocol`; :func:`check_datamodule` checks a
datamodule against it once (``SuperResolution.setup``) and names every missing member, so the model and the
``aerogan`` CLI use plain attributes instead of probing with ``hasattr``/``getattr`` and silently skipping
what a datamodule forgot. Every super-resolution datamodule of this package satisfies it:
:class:`~datamodules.super_resolution.SuperResolutionDataModule` (base of the synthetic, GeoTIFF and array
datamodules) and :class:`~datamodules.multires.MultiResolutionDataModule`. The digits datamodule feeds the
two-layer theory (:class:`aerogan.AdversarialRegularization`), not ``SuperResolution``, and stays outside.

Members are checked statically (:func:`inspect.getattr_static`, also for ``isinstance``), so checking never
runs a property: the multi-resolution ``data_range`` reads every target file, and a misconfigured
``rgb_bands`` raises.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable


class _StaticProtocolMeta(type(Protocol)):  # type: ignore[misc]
    """``isinstance`` by static lookup of every member (as Python >= 3.12 does), never running properties."""

    def __instancecheck__(cls, instance: object) -> bool:
        if cls.__dict__.get("_is_protocol", False):
            return not missing_members(instance, cls)
        return super().__instancecheck__(instance)


@runtime_checkable
class SuperResolutionData(Protocol, metaclass=_StaticProtocolMeta):
    """The interface of a super-resolution datamodule (attributes may be properties, and the reverse).

    Data properties (linked to the generator by the CLI, checked against it by ``SuperResolution.setup``)
    and what the model stores in its checkpoint (band names, statistics, degradation, summary). A
    datamodule without guide groups has empty ``guide_channels``/``guide_ratios``/``guide_band_names()``
    and an empty ``input_summary()``. ``prediction_scenes()`` decides how ``aerogan predict`` runs: ``None``
    through the Trainer's predict loop, a list of scenes one product each
    (:func:`aerogan.prediction.super_resolve_product` with ``product_path(scene)`` and
    ``product_options(scale)``).
    """

    #: batch size of every split (also the tiles per batch of products).
    batch_size: int
    #: training patch side in output (HR) pixels, a multiple of ``scale``.
    patch_size: int

    @property
    def scale(self) -> int:
        """Output grid over input grid (linked to the generator's ``scale``)."""
        ...

    @property
    def in_channels(self) -> int:
        """Input bands (linked to the generator's ``in_channels``)."""
        ...

    @property
    def out_channels(self) -> int:
        """Target bands (linked to the generator's ``out_channels``)."""
        ...

    @property
    def guide_channels(self) -> list[int]:
        """Bands per guide group the model receives, finest first (empty: no guides)."""
        ...

    @property
    def guide_ratios(self) -> list[int]:
        """Each guide group's pixel over the output pixel, finest first (empty: no guides)."""
        ...

    @property
    def target_in_input(self) -> list[int] | None:
        """Positions of the target bands among the inputs, or None (band synthesis: no bicubic baseline)."""
        ...

    @property
    def rgb_bands(self) -> list[int]:
        """Three positions in the target bands for colour composites."""
        ...

    @property
    def data_range(self) -> float:
        """Peak value for PSNR and SSIM, in data units."""
        ...

    @property
    def degradation_spec(self) -> dict[str, int | float]:
        """The nominal degradation LR = D(HR): ``{"scale": int, "sigma": float}`` (sigma in output pixels)."""
        ...

    def statistics(self) -> dict[str, Any]:
        """Normalisation: ``input_mean``, ``input_std``, ``target_mean``, ``target_std`` (C,) tensors; guided
        data adds ``guide_mean``/``guide_std`` (one tensor per group), and ``normalization`` may say what they are."""
        ...

    def input_band_names(self) -> list[str]:
        """Names of the input bands, in input order."""
        ...

    def target_band_names(self) -> list[str]:
        """Names of the target bands, in output order."""
        ...

    def guide_band_names(self) -> list[list[str]]:
        """Names of each guide group's bands, finest first (empty: no guides)."""
        ...

    def input_summary(self) -> dict[str, dict[str, float]]:
        """Per band, the training inputs' distribution for the domain-shift guard (empty: none)."""
        ...

    def prediction_scenes(self) -> list[Any] | None:
        """Scenes ``aerogan predict`` turns into products, or None: predict through the Trainer's loop."""
        ...

    def product_path(self, scene: Any) -> Path:
        """Where the product of one of :meth:`prediction_scenes` goes."""
        ...

    def product_options(self, scale: int) -> dict[str, Any]:
        """Keyword arguments of ``super_resolve_product`` for a model of ``scale`` (nodata, tile, overlap, batch_size)."""
        ...


@functools.cache
def protocol_members(protocol: type = SuperResolutionData) -> dict[str, str]:
    """Every member of ``protocol`` with its expected form, e.g. ``"scale: int (attribute or property)"``."""
    forms: dict[str, str] = {}
    for cls in reversed(protocol.__mro__):
        if cls in (object, Protocol) or not cls.__dict__.get("_is_protocol", False):
            continue
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            forms[name] = f"{name}: {annotation} (attribute or property)"
        for name, value in cls.__dict__.items():
            if name.startswith("_"):
                continue
            if isinstance(value, property):
                forms[name] = f"{name}: {value.fget.__annotations__.get('return', 'Any')} (attribute or property)"
            elif inspect.isfunction(value):
                params = [p for p in inspect.signature(value).parameters.values() if p.name != "self"]
                args = ", ".join(f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name for p in params)
                forms[name] = f"{name}({args}) -> {value.__annotations__.get('return', 'Any')} (method)"
    return forms


def missing_members(dm: object, protocol: type = SuperResolutionData) -> list[str]:
    """The expected form of every member of ``protocol`` that ``dm`` lacks (or has as a non-callable
    where a method is expected), found without running any property."""
    missing = []
    for name, form in protocol_members(protocol).items():
        try:
            value = inspect.getattr_static(dm, name)
        except AttributeError:
            missing.append(form)
            continue
        if form.endswith("(method)"):
            func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
            if not callable(func):
                missing.append(f"{form}, found a {type(value).__name__}")
    return missing


def check_datamodule(dm: object) -> SuperResolutionData:
    """``dm`` typed as :class:`SuperResolutionData`, or a ``TypeError`` naming its class and every missing member."""
    missing = missing_members(dm)
    if missing:
        cls = type(dm)
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} is not a super-resolution datamodule "
            f"(datamodules.contract.SuperResolutionData): it lacks {len(missing)} member(s): " + "; ".join(missing)
            + ". Subclass datamodules.SuperResolutionDataModule, or add them"
        )
    return cast(SuperResolutionData, dm)
