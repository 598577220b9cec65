"""One run of an experiment: the configs and overrides it is fitted with, its seed and its folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RECORD_NAME", "RunSpec"]

#: The finished run's record, in its version folder: arguments, resolved-config key, times, metrics.
RECORD_NAME = "run.json"


@dataclass(frozen=True)
class RunSpec:
    """What one run is: ``aerogan fit`` on ``configs`` + ``overrides`` with ``seed``, logged under ``folder``.

    Args:
        name: the run's name without the seed (``cnn_resnet_regularized``); the folder adds ``_s<seed>``.
        configs: config files, merged in order over the base trainer config (as ``--config`` does).
        overrides: further LightningCLI arguments (``--trainer.max_epochs=3``, ...).
        seed: ``seed_everything``.
        out: the experiment's output folder; the run logs to ``<out>/<group>/<name>_s<seed>/version_<n>/``.
        group: a sub-folder of ``out`` (a task), or empty.
        test: test the last checkpoint on the data's test split after the fit.
        after: ``"module:function"`` called after the fit (and test) as ``function(spec, cli, record)``; its
            dict joins the record (a runner's extra scores: training-split RMSE, inference time).
        labels: what the runner needs to place the run in its table (architecture, objective, λ, task, ...).
        num_threads: torch intra-op threads for the run (None: torch's default).
    """

    name: str
    configs: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    seed: int = 0
    out: str = "runs/experiments"
    group: str = ""
    test: bool = True
    after: str | None = None
    labels: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    num_threads: int | None = None

    @property
    def run_name(self) -> str:
        return f"{self.name}_s{self.seed}"

    @property
    def title(self) -> str:
        """``<group> <name>_s<seed>``: how progress lines name the run."""
        return f"{self.group} {self.run_name}" if self.group else self.run_name

    @property
    def folder(self) -> Path:
        """``<out>/<group>/<name>_s<seed>``: the logger's ``save_dir/name``; versions below it."""
        return Path(self.out, self.group, self.run_name)

    def cli_args(self) -> list[str]:
        """The LightningCLI arguments (no subcommand): configs, seed, overrides, the logger's folder."""
        args = [arg for config in self.configs for arg in ("--config", str(config))]
        args += ["--seed_everything", str(int(self.seed)), *map(str, self.overrides)]
        return args + ["--trainer.logger.init_args.save_dir", str(self.folder.parent),
                       "--trainer.logger.init_args.name", self.run_name]  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["configs"], data["overrides"] = tuple(data["configs"]), tuple(data["overrides"])
        return cls(**data)
