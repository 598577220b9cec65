"""The comparison's table: rows as means ± 95 % interval over seeds, the % gain of a pair, paired claims, the
architecture x objective table, the talk's table, plots; written as compare.json, .csv and .md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aerogan.compare.rows import discover_rows
from aerogan.compare.scores import TEST_METRICS
from aerogan.experiments import interval, paired_claim, write_outputs

__all__ = ["aggregate", "format_gain", "markdown", "pair_gains", "percent_gain", "write_result"]

#: The talk's four-network table: parameters (M), training epochs, training RMSE, inference time (s).
TALK_TABLE = {
    "AeroGAN": (2.0, 100, 41.57, 64),
    "DeepAWiFS": (4.7, 1000, 18.2, 495),
    "DSen2": (4.7, 1000, 21.2, 456),
    "ALERT": (2.8, 50, 10.3, 70),
}
#: Columns with a % gain (lower is better): key in a row's values -> heading.
GAIN_COLUMNS = {
    "generator_params": "Parameters",
    "epochs_to_threshold": "Epochs to threshold",
    "train_rmse": "Training RMSE",
    "test_rmse": "Held-out RMSE",
    "test_consistency_rmse": "Consistency RMSE",
    "test_hallucination": "Hallucination",
    "inference_s": "Inference time",
}
#: Per-seed values averaged into a row (mean ± 95 % interval).
NUMERIC = ("epochs_to_threshold", "train_rmse", *TEST_METRICS.values(), "inference_s", "fit_time_s", "best_val_rmse")


def percent_gain(value: float | None, reference: float | None) -> float | None:
    """``(reference - value) / reference`` in percent (lower is better), as the talk's % gain row; None if undefined."""
    if value is None or reference is None or reference == 0 or not (math.isfinite(value) and math.isfinite(reference)):
        return None
    return (reference - value) / reference * 100.0


def format_gain(gain: float | None) -> str:
    """Two decimals truncated toward zero, as the talk's table prints them ((21.2 - 10.3) / 21.2 = 51.415 -> ``51.41``)."""
    if gain is None:
        return "n/a"
    cents = math.floor(abs(gain) * 100.0 + 1e-6)
    return f"{'-' if gain < 0 and cents else ''}{cents // 100}.{cents % 100:02d}"


def pair_gains(row: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """% gain of ``row`` over ``reference`` per lower-is-better column, and the SRE difference in dB."""
    gains: dict[str, Any] = {key: percent_gain(row.get(key), reference.get(key)) for key in GAIN_COLUMNS}
    sre, ref = row.get("test_sre"), reference.get("test_sre")
    gains["test_sre_db"] = None if sre is None or ref is None else sre - ref
    return gains


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def _mean(rec: dict[str, Any], key: str, digits: int = 4, scale: float = 1.0) -> str:
    """``rec[key]`` (a mean over seeds) with its 95 % half-width when there are several seeds."""
    value, ci = rec.get(key), rec.get(f"{key}_ci")
    if value is None:
        return "n/a"
    text = _num(value * scale, digits)
    return text if ci is None else f"{text} ± {ci * scale:.2g}"


def epochs_cell(rec: dict[str, Any]) -> str:
    e = rec.get("epochs_to_threshold")
    if e is None:
        return f"not reached in {rec.get('epochs_run')} epochs"
    missed = rec.get("epochs_not_reached") or 0
    return _mean(rec, "epochs_to_threshold", 3) + (f" ({missed} of {len(rec.get('seeds', []))} seeds not reached: counted as {rec.get('epochs_run')})" if missed else "")


def _with_base(rec: dict[str, Any], key: str, digits: int = 4) -> str:
    base = rec.get(f"{key}_bicubic")
    return _mean(rec, key, digits) if base is None else f"{_mean(rec, key, digits)} ({_num(base, digits)})"


def cells(rec: dict[str, Any]) -> list[str]:
    """The markdown cells of one row (band synthesis has no bicubic or trust metric: "n/a (synthesis)")."""
    na = "n/a (band synthesis)"
    trust = rec.get("test_consistency_rmse") is not None
    return [
        rec["row"], rec["architecture_name"], rec["objective"], f"{rec['generator_params'] / 1e6:.2f} M ({rec['generator_params']:,})",
        str(rec.get("steps", "n/a")), epochs_cell(rec), _mean(rec, "train_rmse"), _with_base(rec, "test_rmse"),
        _with_base(rec, "test_sre"), _with_base(rec, "test_consistency_rmse") if trust else na,
        f"{_mean(rec, 'test_hallucination', 3, 100)} %" if rec.get("test_hallucination") is not None else na,
        f"{_mean(rec, 'inference_s', 3)} s",
    ]  # fmt: skip


HEADINGS = ["Row", "Architecture", "Objective", "Parameters", "Steps", "Epochs to threshold", "Training RMSE",
            "Held-out RMSE (bicubic)", "SRE dB (bicubic)", "Consistency RMSE (bicubic)", "Hallucination", "Inference time"]  # fmt: skip


def gain_cells(pair: dict[str, Any]) -> list[str]:
    g = pair["gain"]
    pct = {k: format_gain(g.get(k)) for k in GAIN_COLUMNS}
    sre = "n/a" if g.get("test_sre_db") is None else f"{g['test_sre_db']:+.2f} dB"
    return [f"% gain {pair['row']} vs {pair['reference']}", "", "", pct["generator_params"], "", pct["epochs_to_threshold"],
            pct["train_rmse"], pct["test_rmse"], sre, pct["test_consistency_rmse"], pct["test_hallucination"], pct["inference_s"]]  # fmt: skip


def _md_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def objective_table(rows: Sequence[dict[str, Any]], claims: Sequence[dict[str, Any]] = ()) -> str:
    """Architecture x objective: held-out RMSE, epochs and hallucination per objective, reg − sup paired by seed."""
    by_claim = {c["architecture"]: c for c in claims if c.get("architecture")}
    body = []
    for arch in dict.fromkeys(r["architecture"] for r in rows):
        by = {r["objective"]: r for r in rows if r["architecture"] == arch}
        sup, reg = by.get("supervised"), by.get("regularized")
        name = (sup or reg)["architecture_name"]  # type: ignore[index]
        claim = by_claim.get(arch)
        diff = claim["difference"] if claim else None
        if not diff or diff.get("mean") is None:
            d = "n/a"
        else:
            d = f"{diff['mean']:+.4g}" + (f" ± {diff['half_width']:.2g}" if diff.get("half_width") is not None else "")

        def get(rec: dict[str, Any] | None, key: str) -> str:
            if rec is None:
                return "not run"
            if key == "epochs":
                return epochs_cell(rec)
            if rec.get(key) is None:
                return "n/a"
            return f"{_mean(rec, key, 3, 100)} %" if key == "test_hallucination" else _mean(rec, key)

        body.append([name, get(sup, "test_rmse"), get(reg, "test_rmse"), d, claim["verdict"] if claim else "n/a",
                     get(sup, "epochs"), get(reg, "epochs"), get(sup, "test_hallucination"), get(reg, "test_hallucination")])  # fmt: skip
    head = ["Architecture", "Held-out RMSE sup", "Held-out RMSE reg", "reg − sup (paired)", "Regularized lowers RMSE?",
            "Epochs sup", "Epochs reg", "Hallucination sup", "Hallucination reg"]  # fmt: skip
    return _md_table(head, body)


def talk_table() -> str:
    body = [[name, f"{p:g} M", str(e), f"{r:g}", f"{t:g} s"] for name, (p, e, r, t) in TALK_TABLE.items()]
    a, b = TALK_TABLE["ALERT"], TALK_TABLE["DSen2"]
    body.append(["% gain ALERT vs DSen2"] + [format_gain(percent_gain(x, y)) for x, y in zip(a, b, strict=True)])
    return _md_table(["Metrics", "Parameters", "Training epochs", "Training RMSE", "Inference Time"], body)


def _row_of(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One table row from the runs (seeds) of one row: the shared fields of the first, means ± 95 % interval of the rest."""
    first = runs[0]
    row = {k: first.get(k) for k in ("row", "architecture", "architecture_name", "objective", "own_objective", "generator",
                                     "generator_params", "max_epochs", "epochs_run", "steps", "threshold", "inference_how",
                                     "samples_per_epoch", "preset", "history")}  # fmt: skip
    row["seeds"] = sorted(int(r.get("seed") or 0) for r in runs)
    row["run_dirs"] = [r.get("run_dir") for r in runs]
    for key in NUMERIC:
        values = [r.get(key) for r in runs]
        if key == "epochs_to_threshold":
            row["epochs_not_reached"] = sum(v is None for v in values)
            if all(v is None for v in values):
                row[key], row[f"{key}_ci"] = None, None
                continue
            values = [v if v is not None else r.get("epochs_run") for v, r in zip(values, runs, strict=True)]
        ci = interval(values)
        row[key], row[f"{key}_ci"] = ci.mean, ci.half_width
    return row


def _by_seed(runs: Sequence[dict[str, Any]], row: str, key: str) -> dict[int, float | None]:
    return {int(r.get("seed") or 0): r.get(key) for r in runs if r["row"] == row}


def aggregate(records: Sequence[dict[str, Any]], meta: dict[str, Any], pair: Sequence[str] | None) -> dict[str, Any]:
    """``compare.json``'s content: the settings, the runs, the rows (means over seeds) in table order, the pair's
    % gain (of the means) and the paired claims (regularized vs supervised per architecture, the pair)."""
    order = {r.name: i for i, r in enumerate(discover_rows())}
    names = sorted(dict.fromkeys(r["row"] for r in records), key=lambda n: (order.get(n, len(order)), n))
    rows = [_row_of([r for r in records if r["row"] == name]) for name in names]
    claims = []
    for arch in dict.fromkeys(r["architecture"] for r in rows):
        by = {r["objective"]: r for r in rows if r["architecture"] == arch}
        if len(by) == 2:
            sup, reg = by["supervised"]["row"], by["regularized"]["row"]
            claim = paired_claim(f"{reg} lowers held-out RMSE against {sup}", _by_seed(records, reg, "test_rmse"),
                                 _by_seed(records, sup, "test_rmse"))  # fmt: skip
            claims.append(claim | {"architecture": arch})
    result = {**meta, "seeds": sorted({int(r.get("seed") or 0) for r in records}), "rows": rows, "runs": list(records),
              "pair": None, "pair_note": None, "claims": claims}  # fmt: skip
    if pair:
        by_name = {r["row"].lower(): r for r in rows}
        a, b = (by_name.get(p.lower()) for p in pair)
        if a is None or b is None:
            missing = [p for p, r in zip(pair, (a, b), strict=True) if r is None]
            result["pair_note"] = f"no % gain row: {missing} not among the rows run"
        else:
            claim = paired_claim(f"{a['row']} lowers held-out RMSE against {b['row']}", _by_seed(records, a["row"], "test_rmse"),
                                 _by_seed(records, b["row"], "test_rmse"))  # fmt: skip
            result["pair"] = {"row": a["row"], "reference": b["row"], "gain": pair_gains(a, b), "claim": claim}
    return result


CSV_FIELDS = ["row", "architecture", "objective", "generator", "generator_params", "max_epochs", "steps", "seeds",
              "epochs_to_threshold", "epochs_cell", "train_rmse", *TEST_METRICS.values(), "inference_s",
              *(f"{k}_ci" for k in ("train_rmse", "test_rmse", "inference_s"))]  # fmt: skip


def write_result(out: Path, result: dict[str, Any]) -> list[Path]:
    """``compare.json``, ``compare.csv``, ``compare.md`` and the two plots."""
    out.mkdir(parents=True, exist_ok=True)
    plots = [plot_curves(result["runs"], result["threshold"]["value"], out), plot_inference(result["rows"], out)] if result["rows"] else []
    result = {**result, "plots": [str(p) for p in plots]}
    csv_rows = [{**rec, "epochs_cell": epochs_cell(rec)} for rec in result["rows"]]
    if result.get("pair"):
        p = result["pair"]
        gain = {k: format_gain(v) for k, v in p["gain"].items() if k in GAIN_COLUMNS}
        csv_rows.append({"row": f"% gain {p['row']} vs {p['reference']}", **gain,
                         "test_sre": None if p["gain"]["test_sre_db"] is None else round(p["gain"]["test_sre_db"], 4)})  # fmt: skip
    return [*write_outputs(out, "compare", result, csv_rows, CSV_FIELDS, markdown(result)), *plots]


def markdown(result: dict[str, Any]) -> str:
    """The report: settings and definitions, the table with the % gain row, architecture x objective, the talk's table."""
    task, thr = result["task"], result["threshold"]
    body = [cells(r) for r in result["rows"]]
    if result.get("pair"):
        body.append(gain_cells(result["pair"]))
    steps = sorted({str(r.get("steps")) for r in result["rows"]})
    budgets = ", ".join(f"{r['row']} {r['max_epochs']}" for r in result["rows"])
    spe = sorted({str(r.get("samples_per_epoch")) for r in result["rows"]})
    seeds = result.get("seeds") or [result.get("seed", 0)]
    over = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): means ± 95 % interval"
    text = [
        f"# Network comparison on `{task['name']}` ({over})\n",
        f"Task config: `{task['config']}`. Presets: {', '.join(sorted({str(r.get('preset')) for r in result['rows']}))}.\n",
        f"**Steps**: every row trains the same number of generator steps (batches): {', '.join(steps)}"
        + (" (they differ: see the column)" if len(steps) > 1 else "") + ".\n",
        f"**Threshold** (fixed before the runs): {thr['text']}. A row that never reaches it reads \"not reached in N epochs\".\n",
        "**Training RMSE**: the final model on a fixed subset of training-split windows (no augmentation, LR made as "
        "for validation), data units, averaged over bands (val on the train split, not the running training loss).\n",
        "**Held-out**: the test split (`test/rmse`, `test/sre` with their bicubic baselines, `test/consistency/rmse`: "
        "output degraded back against the input; hallucination: `test/correctness/hallucination`, fraction of pixels).\n",
        f"**Inference time**: {result['rows'][0]['inference_how'] if result['rows'] else 'n/a'}; wall seconds on "
        f"{result.get('device', 'the run device')}, file writing included.\n",
        f"**Budgets** (epochs per row; both rows of an architecture get the same): {budgets}; samples per epoch: {', '.join(spe)}. "
        "Supervised rows train no critic.\n",
        _md_table(HEADINGS, body),
    ]
    if result.get("pair_note"):
        text.append(f"\n{result['pair_note']}\n")
    elif result.get("pair"):
        p = result["pair"]
        text.append(f"\n% gain = ({p['reference']} - {p['row']}) / {p['reference']} x 100 of the means, truncated to two decimals as in "
                    "the talk's table (lower is better in every such column); SRE as the difference in dB. "
                    f"Paired over seeds: {p['claim']['text']}.\n")  # fmt: skip
    text += ["\n## Architecture x objective\n\n", objective_table(result["rows"], result.get("claims", [])),
             "\nAcross a line: the critic's effect on one architecture (paired by seed; the verdict reads holds, does not hold "
             "or not resolved at this budget); down a column: the architecture's effect under one objective.\n",
             "\n## The talk's table (for reference)\n\n", talk_table()]  # fmt: skip
    return "\n".join(t.strip("\n") + "\n" for t in text)


def _colors(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    archs = list(dict.fromkeys(r["architecture"] for r in rows))
    return {a: f"C{i % 10}" for i, a in enumerate(archs)}


def plot_curves(runs: Sequence[dict[str, Any]], threshold: float, out: Path) -> Path:
    """``compare_val_rmse.png``: validation RMSE against epochs, one line per run (seed), the threshold dashed."""
    from aerogan.report.figures import new_figure, save_figure

    fig, axes = new_figure(1, 1, 8, 5)
    ax = axes[0, 0]
    colors = _colors(runs)
    labelled = set()
    for r in runs:
        h = r.get("history") or []
        label = None if r["row"] in labelled else r["row"]
        labelled.add(r["row"])
        ax.plot([p["epoch"] for p in h], [p["value"] for p in h], color=colors[r["architecture"]],
                ls="-" if r["objective"] == "regularized" else "--", marker="o", ms=3, label=label)  # fmt: skip
    ax.axhline(threshold, color="0.3", ls=":", label=f"threshold {threshold:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation RMSE (data units)")
    ax.set_title("Validation RMSE per row and seed (solid: regularized, dashed: supervised)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out / "compare_val_rmse.png")


def plot_inference(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """``compare_inference.png``: whole-crop inference time (mean over seeds) against the generator's parameter count."""
    from aerogan.report.figures import new_figure, save_figure

    fig, axes = new_figure(1, 1, 7, 4.5)
    ax = axes[0, 0]
    colors = _colors(rows)
    for r in rows:
        x, y = r["generator_params"] / 1e6, r["inference_s"]
        ax.scatter([x], [y], color=colors[r["architecture"]], marker="o" if r["objective"] == "regularized" else "s")
        ax.annotate(r["row"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("generator parameters (M)")
    ax.set_ylabel("whole-crop inference time (s)")
    ax.set_title("Inference time against parameters (circle: regularized, square: supervised)")
    ax.grid(alpha=0.3)
    return save_figure(fig, out / "compare_inference.png")
