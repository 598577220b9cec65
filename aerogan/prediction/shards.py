"""Archives on many devices and nodes: products sharded over ranks through Lightning Fabric.

The same ``aerogan product ... --out-dir OUT`` runs in one process, or in several: ``--devices N`` (and
``--num-nodes M``) launches them with Lightning Fabric (DDP; gloo on CPU, NCCL on GPUs), and a job started by
``torchrun`` or SLURM joins the world those set up, exactly as ``aerogan fit`` does. Rank 0 names the products
and decides which are complete; then

* with at least as many products to make as ranks, each rank makes whole products (``todo[rank::world]``)
  and writes them itself;
* with fewer, each product is split over a group of ranks by block columns (the product's own unit of work,
  :class:`~aerogan.prediction.product.ProductJob`): every rank writes its columns to a part file, the group's
  first rank (the owner) merges the parts and the consistency states and writes the product.

Either way each output equals the one-process output byte for byte (same tiles, same batches, same encoding).
Collectives (object gathers) are called by every rank at the same points, never inside a rank-only branch; only
rank 0 writes the table, with every rank's records. ``--shard I/N`` instead runs the ``I``-th of ``N``
independent jobs (a SLURM job array): no process group, products ``todo[I::N]``, its own table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aerogan.prediction.archive import (
    ArchiveRecord,
    Product,
    expand_products,
    is_complete,
    merge_records,
    output_path,
    products_table,
    read_table,
    run_products,
)

__all__ = ["Ranks", "launch", "parse_shard", "run_archive"]


@dataclass
class Ranks:
    """This process's place among the ranks: ``gather`` (every rank's object, in rank order) and ``broadcast``
    (rank 0's object) are collectives every rank calls at the same point."""

    rank: int = 0
    world: int = 1
    device: torch.device | None = None

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def launch(accelerator: str = "auto", devices: int | str | None = None, num_nodes: int = 1) -> Ranks:
    """One process (no launcher, ``devices`` 1 or None), or Lightning Fabric's DDP world: launched here for
    ``devices > 1``, joined when ``torchrun`` or SLURM started the processes (their world size)."""
    from lightning.fabric import Fabric
    from lightning.fabric.plugins.environments import SLURMEnvironment

    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    slurm = SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1  # srun started several tasks
    if devices is None and env_world > 1:
        devices = int(os.environ.get("LOCAL_WORLD_SIZE", env_world))
        num_nodes = max(1, env_world // devices)
    if (devices in (None, 1, "1")) and num_nodes == 1 and env_world == 1 and not slurm:
        return Ranks()
    fabric = Fabric(accelerator=accelerator, devices=devices if devices is not None else "auto", num_nodes=num_nodes,
                    strategy="ddp")
    fabric.launch()
    return Ranks(fabric.global_rank, fabric.world_size, fabric.device)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` (0 <= I < N) -> (I, N); SLURM's ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`` fits."""
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError as err:
        raise ValueError(f"--shard {text!r}: expected I/N with integers, e.g. 0/4") from err
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: expected 0 <= I < N")
    return i, n


# ---------------------------------------------------------------------------------------------- running
MakeWhole = Callable[[Product, Path, Callable[[int, int], None]], ArchiveRecord]


def run_archive(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    make: MakeWhole,
    *,
    tool: str,
    models_tag: str | None,
    ranks: Ranks | None = None,
    split: Callable[[Product, Path, int, int, Ranks], ArchiveRecord | None] | None = None,
    shard: tuple[int, int] | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[ArchiveRecord]:
    """Make the products named by ``inputs`` in ``out_dir`` over ``ranks`` (see the module docstring).

    ``make(product, out, progress)``: one whole product. ``split(product, out, index, size, ranks)``: this
    rank's share of a product split over ``size`` ranks (the owner, ``index`` 0, returns the record; the others
    None); without it, surplus ranks idle. Returns every record (rank 0; the others: their own).
    """
    ranks = ranks or Ranks()
    out = Path(out_dir)
    plan: tuple[str, Any]
    if ranks.rank == 0:
        try:
            products = expand_products(inputs, out / ".items")
            earlier = read_table(out)
            complete = [not force and is_complete(output_path(out, p), models_tag) for p in products]
            plan = ("ok", (products, earlier, complete))
        except Exception as err:  # noqa: BLE001 - every rank must learn it, not hang in the broadcast
            plan = ("error", err)
    else:
        plan = ("", None)
    status, payload = ranks.broadcast(plan)
    if status == "error":
        raise payload
    products, earlier, complete = payload
    if shard is not None:
        products = products[shard[0] :: shard[1]]
        complete = complete[shard[0] :: shard[1]]
    skipped = [ArchiveRecord(p.name, "skipped", str(output_path(out, p)), p.origin, warnings=["output complete"])
               for p, done in zip(products, complete, strict=True) if done]
    todo = [p for p, done in zip(products, complete, strict=True) if not done]
    table = TableWriter(out, tool, earlier, products, shard) if ranks.rank == 0 else None
    if table is not None:
        table.add(skipped)
    show = progress and ranks.rank == 0
    mine: list[ArchiveRecord] = []
    if len(todo) >= ranks.world or split is None:
        mine = run_products(todo[ranks.rank :: ranks.world], out, make, progress=show,
                            on_record=table.add_one if table is not None else None)
    elif todo:
        # fewer products than ranks: product i is split over the ranks r with r % len(todo) == i
        i = ranks.rank % len(todo)
        group = [r for r in range(ranks.world) if r % len(todo) == i]
        record = split(todo[i], output_path(out, todo[i]), group.index(ranks.rank), len(group), ranks)
        mine = [record] if record is not None else []
    everything = [r for part in ranks.gather(mine) for r in part]
    if table is not None:
        table.add(everything)
        return table.records()
    return mine


class TableWriter:
    """Rank 0's table of the archive: earlier records kept for skipped products, rewritten as records arrive."""

    def __init__(self, out: Path, tool: str, earlier: dict[str, ArchiveRecord], products: Sequence[Product],
                 shard: tuple[int, int] | None) -> None:
        self.out, self.tool, self.earlier = out, tool, earlier
        self.order = {p.name: i for i, p in enumerate(products)}
        self.stem_suffix = f"_{shard[0]}of{shard[1]}" if shard else ""
        self._records: dict[str, ArchiveRecord] = {}

    def add_one(self, record: ArchiveRecord) -> None:
        self.add([record])

    def add(self, records: Sequence[ArchiveRecord]) -> None:
        for r in merge_records(self.earlier, records):
            self._records[r.product] = r
        products_table(self.out, self.records(), self.tool, self.stem_suffix)

    def records(self) -> list[ArchiveRecord]:
        return sorted(self._records.values(), key=lambda r: self.order.get(r.product, len(self.order)))


# ---------------------------------------------------------------------------------------------- one product, split
def split_product(job_factory: Callable[[Product], Any], record_of: Callable[[Product, Path, Any, float], ArchiveRecord]
                  ) -> Callable[[Product, Path, int, int, Ranks], ArchiveRecord | None]:
    """The ``split`` of :func:`run_archive` for products made by :class:`~aerogan.prediction.product.ProductJob`:
    block columns ``index::size`` into a part file; the owner merges parts and consistency states, writes the COG."""
    import time

    def run(product: Product, out: Path, index: int, size: int, ranks: Ranks) -> ArchiveRecord | None:
        t0 = time.perf_counter()
        parts_dir = out.parent / ".parts"
        part = parts_dir / f"{product.name}.part{index}of{size}.tif"
        job = None
        mine: tuple[str, int, str, list[dict[str, Any]], str]
        try:
            job = job_factory(product)
            columns = list(range(index, len(job.columns), size))
            with job.gdal_env():
                job.stage(part, lambda sink: job.write_columns(sink, columns))
            states = [{k: v.cpu() for k, v in t.consistency.metric_state.items()} for t in job.tasks]
            mine = (product.name, index, str(part), states, "")
        except Exception as err:  # noqa: BLE001 - every rank must reach the gather below
            mine = (product.name, index, str(part), [], f"{type(err).__name__}: {err}")
        parts = sorted((p for p in ranks.gather(mine) if p[0] == product.name), key=lambda p: p[1])
        try:
            if index != 0:
                return None
            errors = [p[4] for p in parts if p[4]]
            if errors or job is None:
                return ArchiveRecord(product.name, "failed", str(out), product.origin, seconds=time.perf_counter() - t0,
                                     error="; ".join(dict.fromkeys(errors)) or "the owner could not prepare the product")
            for _, _, _, states, _ in parts[1:]:
                for task, state in zip(job.tasks, states, strict=True):
                    task.consistency.merge_state(state)
            _merge_parts(job, [(Path(p[2]), list(range(p[1], len(job.columns), size))) for p in parts], out)
            return record_of(product, out, job, time.perf_counter() - t0)
        finally:
            if job is not None:
                job.restore()
            if index == 0:
                for p in parts:
                    Path(p[2]).unlink(missing_ok=True)
                if parts_dir.is_dir() and not any(parts_dir.iterdir()):
                    parts_dir.rmdir()

    return run


def _merge_parts(job: Any, parts: Sequence[tuple[Path, list[int]]], out: Path) -> None:
    """The owner's product from the parts' block columns (encoded values: ``sink.write`` leaves them as they are)."""
    import rasterio
    from rasterio.windows import Window

    from aerogan.prediction.sinks import BLOCK_ROWS

    def copy(sink: Any) -> None:
        for path, columns in parts:
            with rasterio.open(path) as src:
                nodata = src.nodata
                for i in columns:
                    c0, c1 = job.columns[i]
                    for r in range(0, job.height, BLOCK_ROWS):
                        data = src.read(window=Window(c0, r, c1 - c0, min(BLOCK_ROWS, job.height - r)))
                        if nodata is None:
                            valid = np.ones(data.shape[1:], dtype=bool)
                        elif np.isnan(nodata):
                            valid = ~np.isnan(data).all(0)
                        else:
                            valid = ~(data == nodata).all(0)
                        sink.write(0, r, data, valid, col0=c0)

    job.write(out, copy)
