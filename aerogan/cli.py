"""The ``aerogan`` command: LightningCLI for fit/validate/test/predict, plus the project's own tools.

Data properties are linked to the generator, never repeated by hand: the datamodule's
``in_channels``, ``out_channels`` and ``scale`` become the generator's init arguments (critics infer
their band count from their first input). Model and data are chosen with ``class_path`` in configs;
the classes of ``aerogan``, ``datamodules`` and ``callbacks`` can be named by their short names.

Every fit gets the three monitors of ``callbacks/`` whatever a config puts in ``trainer.callbacks``: they are
LightningCLI *forced callbacks* (``parser.add_lightning_class_args``) under ``monitors.gradient_norm``,
``monitors.weight_drift`` and ``monitors.topology``, configured like any other argument
(``--monitors.gradient_norm.every_n_steps 10``, or a ``monitors:`` section in YAML) and switched off with
``--monitors.topology.enabled false``. Their defaults (:data:`MONITOR_DEFAULTS`) keep the cost small. They only
act during ``fit``; ``validate``/``test``/``predict`` accept the same ``monitors:`` settings and ignore them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import aerogan.nets  # noqa: F401 - registers short class names for configs
import callbacks  # noqa: F401
import datamodules  # noqa: F401
from aerogan.adversarial import AdversarialRegularization
from aerogan.allocator import reuse_freed_memory
from callbacks import GradientNormMonitor, TopologySnapshot, WeightDriftMonitor
from datamodules.contract import SuperResolutionData

#: The monitors attached to every fit: ``monitors.<name>`` -> class.
MONITORS: dict[str, type[Callback]] = {
    "gradient_norm": GradientNormMonitor,
    "weight_drift": WeightDriftMonitor,
    "topology": TopologySnapshot,
}
#: Their CLI defaults where they differ from (or are worth stating beside) the classes' own: gradient norms
#: every 25 batches and the loss-term analysis every 100, drift every 50 batches with the per-neuron table every
#: 5 epochs, topology snapshots every 20 epochs (plus, for each, the final values at the end of fit).
MONITOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "gradient_norm": {"every_n_steps": 25, "loss_terms_every_n_steps": 100},
    "weight_drift": {"every_n_steps": 50, "table_every_n_epochs": 5},
    "topology": {"every_n_epochs": 20},
}


class AeroganCLI(LightningCLI):
    """LightningCLI with data-to-model links, the always-on monitors and the manual-optimization optimizer injection."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for prop in ("in_channels", "out_channels", "scale"):
            parser.link_arguments(f"data.{prop}", f"model.init_args.generator.init_args.{prop}", apply_on="instantiate")
        # guide groups: multi-resolution data has them; the other super-resolution datamodules give empty lists
        for prop in ("guide_channels", "guide_ratios"):
            parser.link_arguments(f"data.{prop}", f"model.init_args.generator.init_args.{prop}", apply_on="instantiate")
        for name, cls in MONITORS.items():
            parser.add_lightning_class_args(cls, f"monitors.{name}")
        parser.set_defaults(
            {f"monitors.{name}.{key}": value for name, args in MONITOR_DEFAULTS.items() for key, value in args.items()}
        )

    def predict(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None,
                ckpt_path: str | None = None, **kwargs: Any) -> Any:
        """``aerogan predict``: the Trainer's predict loop, except for data that names its prediction scenes.

        A super-resolution datamodule whose ``prediction_scenes()`` is a list (multi-resolution data: Sentinel-2
        band groups) gets one product per scene, on its finest grid with every band
        (:func:`aerogan.prediction.super_resolve_product`), written by this process on the Trainer's first
        device; ``aerogan product`` does the same for several models at once. Other data (``prediction_scenes()``
        None, or a datamodule outside :class:`~datamodules.contract.SuperResolutionData` such as digits) goes
        through the Trainer.
        """
        scenes = datamodule.prediction_scenes() if isinstance(datamodule, SuperResolutionData) else None
        if scenes is None:
            return self.trainer.predict(model, datamodule=datamodule, ckpt_path=ckpt_path, **kwargs)
        from aerogan.prediction import load_model, super_resolve_product
        from aerogan.prediction.product import print_report

        if ckpt_path is None:
            raise ValueError("aerogan predict on multi-resolution data needs --ckpt_path (a checkpoint written by aerogan fit)")
        trained = load_model(ckpt_path)
        options = datamodule.product_options(int(trained.metadata.get("scale", 1)))
        for scene in scenes:
            out = datamodule.product_path(scene)
            out.parent.mkdir(parents=True, exist_ok=True)
            report = super_resolve_product(trained, scene, out, device=self.trainer.strategy.root_device, **options)
            print_report(report)
        return None

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer with the enabled monitors added to the config's callbacks (disabled ones left out).

        A config that also lists one of these monitors in ``trainer.callbacks`` (same class, same tracked
        modules) would log every tag twice: that is refused with a message saying where the settings go.
        """
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        listed = trainer_config.get("callbacks") or []
        listed = listed if isinstance(listed, list) else [listed]
        extra = []
        for key in self._parser(self.subcommand).callback_keys:
            callback = self._get(self.config_init, key)
            if not getattr(callback, "enabled", True):
                continue
            if any(_same_monitor(cb, callback) for cb in listed):
                cls = type(callback)
                raise ValueError(
                    f"trainer.callbacks lists {cls.__module__}.{cls.__qualname__}, which every fit already gets as "
                    f"`{key}`: move its init_args under `{key}` in the config (a `monitors:` section) or switch the "
                    f"attached one off with `--{key}.enabled false`."
                )
            extra.append(callback)
        return self._instantiate_trainer(trainer_config, extra)


def _same_monitor(cb: Callback, monitor: Callback) -> bool:
    """``cb`` duplicates ``monitor``: same class and same checkpoint state key (same tracked modules)."""
    return type(cb) is type(monitor) and getattr(cb, "enabled", True) and cb.state_key == monitor.state_key


#: The base trainer config every run includes (logger, checkpoints, monitoring callbacks); run
#: configs merge their own ``trainer:`` settings over it. Found next to the package in a source
#: checkout or editable install; ``AEROGAN_BASE_CONFIG`` points elsewhere.
BASE_CONFIGS = [
    Path(os.environ.get("AEROGAN_BASE_CONFIG", Path(__file__).resolve().parents[1] / "configs" / "trainer" / "default.yaml"))
]

#: Commands handled outside LightningCLI, with the module that implements each.
TOOLS = {
    "report": "aerogan.report",
    "study": "aerogan.study",
    "export": "aerogan.export",
    "bench": "aerogan.bench.suite",
    "product": "aerogan.prediction.product",
    "sharpen": "aerogan.sharpen",
    "transfer": "aerogan.transfer",
    "trust": "aerogan.trust_study",
    "compare": "aerogan.compare",
}


def main() -> None:
    """Entry point of the ``aerogan`` console script (reads ``sys.argv``); large CPU tensors reuse freed memory
    (:func:`aerogan.allocator.reuse_freed_memory`) in every command."""
    reuse_freed_memory()
    cli_main()


def cli_main(args: Sequence[str] | None = None) -> AeroganCLI | None:
    """Run a command; returns the LightningCLI object (None for the project's own tools)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in TOOLS:
        import importlib

        importlib.import_module(TOOLS[argv[0]]).main(argv[1:])
        return None
    return make_cli(args)


#: The LightningCLI subcommands, each with the base trainer config as its default config file.
SUBCOMMANDS = ("fit", "validate", "test", "predict")


def make_cli(args: Sequence[str] | None = None, run: bool = True, cli_class: type[AeroganCLI] = AeroganCLI) -> AeroganCLI:
    """The ``aerogan`` LightningCLI on ``args``: with ``run=True`` a subcommand (``["fit", ...]``) runs; with
    ``run=False`` the arguments (no subcommand) are parsed and the model, datamodule and trainer instantiated
    for the caller to drive (:mod:`aerogan.experiments` fits and tests through it)."""
    defaults = {"default_config_files": [str(p) for p in BASE_CONFIGS if p.is_file()]}
    return cli_class(
        AdversarialRegularization,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        parser_kwargs={sub: defaults for sub in SUBCOMMANDS} if run else defaults,
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
