"""The one engine under ``aerogan study``, ``aerogan trust`` and ``aerogan compare``.

* :class:`RunSpec` (:mod:`~aerogan.experiments.spec`): one run: config files, overrides, seed, folder;
* :func:`execute` (:mod:`~aerogan.experiments.execute`): fit and test it through the LightningCLI parser;
  :func:`resolve_key` hashes its resolved configuration, so an identical finished run is reused;
* :func:`run_specs` (:mod:`~aerogan.experiments.pool`): many runs, here or in ``--devices N`` worker processes;
* :func:`load_preset` (:mod:`~aerogan.experiments.presets`): one preset schema (``seeds``, ``num_threads``,
  ``overrides`` plus each runner's keys);
* :func:`interval` / :func:`paired_claim` (:mod:`~aerogan.experiments.stats`): mean ± 95 % interval over seeds,
  paired claims that read "holds", "does not hold" or "not resolved at this budget";
* :func:`write_outputs` (:mod:`~aerogan.experiments.writer`): json, csv and markdown, written atomically;
* :func:`~aerogan.experiments.arguments.add_runner_arguments`: the options every runner shares (``--out``,
  ``--seeds``, ``--seed``, ``--devices``, ``--merge``, ``--force``, ``--threads``).

A runner is a grid (a list of specs), a summary (records to table rows and claims) and a table.
"""

from aerogan.experiments.execute import (
    build,
    config_key,
    execute,
    find_finished,
    finished_records,
    resolve_config,
    resolve_key,
)
from aerogan.experiments.pool import run_specs
from aerogan.experiments.presets import load_preset, preset_path, seed_list
from aerogan.experiments.spec import RECORD_NAME, RunSpec
from aerogan.experiments.stats import HOLDS, NOT_HOLD, UNRESOLVED, Interval, interval, paired_claim
from aerogan.experiments.writer import merge_runs, read_results, write_outputs

__all__ = [
    "HOLDS", "NOT_HOLD", "RECORD_NAME", "UNRESOLVED", "Interval", "RunSpec", "build", "config_key", "execute",
    "find_finished", "finished_records", "interval", "load_preset", "merge_runs", "paired_claim", "preset_path",
    "read_results", "resolve_config", "resolve_key", "run_specs", "seed_list", "write_outputs",
]  # fmt: skip
