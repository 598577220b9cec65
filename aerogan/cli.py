"""The ``aerogan`` command: LightningCLI for fit/validate/test/predict, plus the project's own tools.

Data properties are linked to the generator, never repeated by hand: the datamodule's
``in_channels``, ``out_channels`` and ``scale`` become the generator's init arguments (critics infer
their band count from their first input). Model and data are chosen with ``class_path`` in configs;
the classes of ``aerogan``, ``datamodules`` and ``callbacks`` can be named by their short names.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import aerogan.nets  # noqa: F401 - registers short class names for configs
import callbacks  # noqa: F401
import datamodules  # noqa: F401
from aerogan.adversarial import AdversarialRegularization


class AeroganCLI(LightningCLI):
    """LightningCLI with data-to-model links and the manual-optimization optimizer injection."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for prop in ("in_channels", "out_channels", "scale"):
            parser.link_arguments(f"data.{prop}", f"model.init_args.generator.init_args.{prop}", apply_on="instantiate")


#: The base trainer config every run includes (logger, checkpoints, monitoring callbacks); run
#: configs merge their own ``trainer:`` settings over it. Found next to the package in a source
#: checkout or editable install; ``AEROGAN_BASE_CONFIG`` points elsewhere.
BASE_CONFIGS = [
    Path(os.environ.get("AEROGAN_BASE_CONFIG", Path(__file__).resolve().parents[1] / "configs" / "trainer" / "default.yaml"))
]

#: Commands handled outside LightningCLI, with the module that implements each.
TOOLS = {"report": "aerogan.report", "export": "aerogan.export", "bench": "aerogan.bench"}


def main() -> None:
    """Entry point of the ``aerogan`` console script (reads ``sys.argv``)."""
    cli_main()


def cli_main(args: Sequence[str] | None = None) -> AeroganCLI | None:
    """Run a command; returns the LightningCLI object (None for the project's own tools)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in TOOLS:
        import importlib

        importlib.import_module(TOOLS[argv[0]]).main(argv[1:])
        return None
    return AeroganCLI(
        AdversarialRegularization,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        parser_kwargs={
            sub: {"default_config_files": [str(p) for p in BASE_CONFIGS if p.is_file()]}
            for sub in ("fit", "validate", "test", "predict")
        },
        args=args,
    )


if __name__ == "__main__":
    main()
