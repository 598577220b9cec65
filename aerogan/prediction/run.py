"""One rank's share of a prediction plan (assemblers into sinks), and rank zero's merge of the parts.

``world == 1``: rows go straight into the final outputs (temporary files until committed). With
several ranks, each rank computes a contiguous run of strips (plus the one or two earlier strips that
overlap its first one, computed but not written) and writes its finished rows to a part file; after a
barrier, rank zero copies the parts into the outputs (:func:`assemble_parts`, file operations only).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aerogan.prediction.assembler import SceneAssembler
from aerogan.prediction.plan import PredictionPlan
from aerogan.prediction.sinks import MemorySink, PartSink, Sink, gdal_cache, output_sink, part_path


class PredictionRun:
    """One rank's share of a prediction plan: assemblers, sinks, commit or abort.

    ``world == 1``: rows go straight into the final outputs (temporary files until :meth:`commit`).
    ``world > 1``: rows go into per-rank part files; rank zero then calls :func:`assemble_parts`.
    Callers run it inside :func:`aerogan.prediction.sinks.gdal_cache` (bounded GDAL cache).
    """

    def __init__(self, plan: PredictionPlan, world: int = 1, rank: int = 0, band_names: Sequence[str] | None = None,
                 memory: bool = False) -> None:
        self.plan = plan
        self.world, self.rank = world, rank
        self.band_names = list(band_names) if band_names is not None else None
        self.memory = memory
        strips = plan.strips_for(world, rank)
        self.owned: dict[int, set[int]] = {}
        self.owned_rows: dict[int, tuple[int, int]] = {}
        for s, j, own in strips:
            if own:
                self.owned.setdefault(s, set()).add(j)
                a, b = plan.grids[s].strip_rows_done(j)
                lo, hi = self.owned_rows.get(s, (a, b))
                self.owned_rows[s] = (min(lo, a), max(hi, b))
        self.sinks: dict[Any, Sink] = {}
        self.assembler: SceneAssembler | None = None
        self.scene: int | None = None
        self.nonfinite: dict[int, int] = {}
        self.committed: list[Path] = []

    def _sink(self, scene: int, channels: int) -> Sink:
        plan, s = self.plan, self.plan.scale
        sc = plan.scenes[scene]
        spec = plan.outputs[sc.output]
        if self.world > 1:
            key: Any = ("part", scene)
            if key not in self.sinks:
                a, b = self.owned_rows[scene]
                k0, k1 = sc.kept()
                self.sinks[key] = PartSink(part_path(spec, scene, self.rank, self.world), channels, a * s, b * s, (k1 - k0) * s)
            return self.sinks[key]
        key = sc.output
        if key not in self.sinks:
            if self.memory:
                self.sinks[key] = MemorySink(channels, spec.height * s, spec.width * s)
            else:
                self.sinks[key] = output_sink(spec, s, channels, self.band_names, plan.output_dtype)
        return self.sinks[key]

    def add(self, scene: int, strip: int, first: int, pred: np.ndarray, valid: np.ndarray, nonfinite: int = 0) -> None:
        """Blend predicted tiles ``first, first+1, ...`` of ``strip`` of ``scene`` (``pred`` (B, C, th*s, tw*s),
        ``valid`` (B, th, tw)); an output whose scenes are all done is published (one rank)."""
        if scene != self.scene:
            if self.world == 1 and not self.memory and self.scene is not None:
                done = self.plan.scenes[self.scene].output
                if done != self.plan.scenes[scene].output and done in self.sinks:  # output complete: publish it
                    self.committed.append(self.sinks.pop(done).commit())
            self.scene = scene
            index = self.plan.scenes[scene].index
            owned = self.owned.get(scene, set())
            sink = self._sink(scene, pred.shape[1]) if owned else None

            sc = self.plan.scenes[scene]
            k0, k1 = (k * self.plan.scale for k in sc.kept())
            col0 = (sc.col0 * self.plan.scale + k0) if self.world == 1 else 0  # a part holds its kept columns only

            def write(row0: int, data: np.ndarray, valid_rows: np.ndarray, sink: Sink | None = sink, index: int = index) -> None:
                if (k0, k1) != (0, data.shape[2]):  # a block column: its halo is not written
                    data, valid_rows = data[:, :, k0:k1], valid_rows[:, k0:k1]
                sink.write(index, row0, data, valid_rows, col0)

            self.assembler = SceneAssembler(self.plan.grids[scene], self.plan.scale, owned, write)
        if strip in self.owned.get(scene, ()):
            self.nonfinite[scene] = self.nonfinite.get(scene, 0) + int(nonfinite)
        self.assembler.add(strip, first, pred, valid)

    def warn_nonfinite(self) -> None:
        per_source: dict[str, int] = {}  # block columns of one scene add up
        for scene, n in self.nonfinite.items():
            name = self.plan.scenes[scene].source.name
            per_source[name] = per_source.get(name, 0) + n
        for name, n in per_source.items():
            if n:
                warnings.warn(
                    f"{name}: {n} input pixel(s) hold NaN or infinite values; "
                    f"they were treated as nodata (written as nodata in the output)",
                    stacklevel=2,
                )

    def commit(self) -> list[Path]:
        """Finish this rank: close parts, or (one rank) move the outputs to their final names."""
        self.warn_nonfinite()
        out = list(self.committed)
        for sink in self.sinks.values():
            path = sink.commit()
            if path is not None:
                out.append(path)
        self.sinks = {}
        return out

    def abort(self) -> None:
        for sink in self.sinks.values():
            sink.abort()
        self.sinks = {}

    def result(self) -> np.ndarray:
        """The in-memory output of a one-scene ``memory=True`` run."""
        (sink,) = self.sinks.values()
        return sink.array


def assemble_parts(plan: PredictionPlan, world: int, band_names: Sequence[str] | None, rows_per_copy: int = 256) -> list[Path]:
    """Rank zero: copy every rank's part files into the outputs, then remove the parts (file I/O only)."""
    s = plan.scale
    ranges: dict[int, list[tuple[int, int, int]]] = {}
    for r in range(world):
        run = PredictionRun(plan, world, r)
        for scene, (a, b) in run.owned_rows.items():
            ranges.setdefault(scene, []).append((r, a * s, b * s))
    sinks: dict[int, Sink] = {}
    parts: list[Path] = [part_path(plan.outputs[sc.output], i, r, world) for i, sc in enumerate(plan.scenes) for r in range(world)]
    done: list[Path] = []
    with gdal_cache(plan):
        try:
            for i, sc in enumerate(plan.scenes):
                spec = plan.outputs[sc.output]
                if i and plan.scenes[i - 1].output != sc.output and plan.scenes[i - 1].output in sinks:
                    done.append(sinks.pop(plan.scenes[i - 1].output).commit())
                for r, a, b in sorted(ranges.get(i, []), key=lambda t: t[1]):
                    part = np.load(part_path(spec, i, r, world), mmap_mode="r")
                    if sc.output not in sinks:
                        sinks[sc.output] = output_sink(spec, s, part.shape[0], band_names, plan.output_dtype)
                    col0 = (sc.col0 + sc.kept()[0]) * s
                    for k in range(0, b - a, rows_per_copy):
                        block = np.asarray(part[:, k : k + rows_per_copy])
                        sinks[sc.output].write(sc.index, a + k, block, ~np.isnan(block).any(0), col0)
                    del part
            for sink in sinks.values():
                done.append(sink.commit())
        except BaseException:
            for sink in sinks.values():
                sink.abort()
            raise
        finally:
            for p in parts:
                p.unlink(missing_ok=True)
    return done
