"""Grids of runs: the members that share a compiled program run as one vmapped ensemble, finished cells are skipped.

A grid maps config keys to values. ``seed``, ``lr`` and ``weight_decay`` change no shapes,
so every combination of them trains as one :func:`fit_ensemble` program; every other key
(``model``, ``dataset``, ``model_options.padding_mode``...) makes a *cell* with its own
program. Each cell writes its ensemble's files into ``out/<cell>/``; a finished cell made by
the same config and members is read back instead of trained, so a killed sweep resumes
where it stopped (a cell cut off mid-training resumes from its last checkpoint, and a changed config retrains).
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import itertools
import json
import math
import multiprocessing
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cnnjax.train import checkpoint
from cnnjax.train.config import TrainConfig
from cnnjax.train.ensemble import fit_ensemble
from cnnjax.train.members import member_grid, member_records

VMAPPED_KEYS = ("seed", "lr", "weight_decay")
_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


@dataclasses.dataclass
class SweepResult:
    out_dir: Path
    rows: list[dict[str, Any]]  # one per member: the cell's values, seed/lr/weight_decay, metrics, status
    csv_path: Path
    plot_path: Path | None


def scalar(text: str) -> Any:
    """A CLI or CSV value as a number, bool or None where it reads as one, else the string itself.

    Example:
      >>> [scalar(t) for t in ("1e-3", "4", "true", "True", "zeros", "")]
      [0.001, 4, True, True, 'zeros', None]
    """
    named = {"True": True, "False": False, "None": None, "": None}
    if text in named:
        return named[text]
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["lr=0.1,0.01", "model_options.padding_mode=zeros,circular"]`` -> ``{key: [values]}``.

    Values are read by :func:`scalar` (``0.1`` a float, ``true`` a bool, ``zeros`` a string).
    Keys are :class:`TrainConfig` fields (dashes allowed) or ``model_options.NAME``.

    Example:
      >>> parse_grid(["lr=0.1,0.01", "model=mlp"])
      {'lr': [0.1, 0.01], 'model': ['mlp']}
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values:
            raise ValueError(f"--grid {item!r}: expected KEY=v1,v2,... (e.g. lr=0.1,0.01)")
        grid[key] = [scalar(v.strip()) for v in values.split(",")]
    check_grid(grid)
    return grid


def check_grid(grid: dict[str, list[Any]]) -> None:
    """Raise ``ValueError`` naming a key that is no config field or a key with no values."""
    for key, values in grid.items():
        field, _, sub = key.partition(".")
        if field not in _FIELDS or (sub and field != "model_options") or (field == "model_options" and not sub):
            raise ValueError(f"grid key {key!r} is not a TrainConfig field; use one of {sorted(_FIELDS)} "
                             f"or model_options.NAME")
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"grid key {key!r} needs a non-empty list of values, got {values!r}")


def cells(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the keys that are not vmapped, in grid order (``[{}]`` for none).

    Example:
      >>> cells({"model": ["mlp", "logistic"], "seed": [0, 1]})
      [{'model': 'mlp'}, {'model': 'logistic'}]
    """
    keys = [k for k in grid if k not in VMAPPED_KEYS]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def cell_config(base: TrainConfig, cell: dict[str, Any]) -> TrainConfig:
    """``base`` with a cell's values; ``model_options.X`` keys merge into ``model_options``."""
    overrides: dict[str, Any] = {}
    for key, value in cell.items():
        field, _, sub = key.partition(".")
        if sub:
            overrides.setdefault(field, dict(base.model_options))[sub] = value
        else:
            overrides[field] = value
    return TrainConfig.merge(base, overrides)


def cell_name(cell: dict[str, Any]) -> str:
    """A folder name for a cell: ``model=mlp,padding_mode=circular`` (``base`` for the empty cell)."""
    parts = [f"{k.rpartition('.')[2]}={v}" for k, v in cell.items()]
    return re.sub(r"[^\w.,=+-]", "_", ",".join(parts)) or "base"


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [{k: scalar(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _same_run(cell_dir: Path, cfg: TrainConfig, members: list[dict[str, Any]]) -> bool:
    """The cell's folder was started by this very config and these members (not a stale grid)."""
    files = [cell_dir / n for n in ("config.json", "members.json")]
    if not all(f.exists() for f in files):
        return False
    saved = {**json.loads(files[0].read_text()), "run_dir": None}
    return saved == {**cfg.to_dict(), "run_dir": None} and json.loads(files[1].read_text()) == members


def run_cell(base: TrainConfig, cell: dict[str, Any], vmapped: dict[str, list[Any]], cell_dir: Path,
             progress: bool = False) -> list[dict[str, Any]]:
    """Train one cell's ensemble into ``cell_dir`` (or read it back when finished); rows carry the cell's values.

    Results made by another config or other members (a changed grid) are retrained, not reused.
    """
    cfg = dataclasses.replace(cell_config(base, cell), run_dir=str(cell_dir))
    seeds, lrs, wds = vmapped.get("seed", [cfg.seed]), vmapped.get("lr"), vmapped.get("weight_decay")
    members = member_records(member_grid(cfg, seeds, lrs, wds))
    same = _same_run(cell_dir, cfg, members)
    if not (same and (cell_dir / "members.csv").exists()):
        started = same and checkpoint.has_checkpoint(cell_dir)
        fit_ensemble(cfg, seeds, lr=lrs, weight_decay=wds, progress=progress, resume=started)
        (cell_dir / "cell.json").write_text(json.dumps(cell))
    return [{**cell, **row} for row in _read_rows(cell_dir / "members.csv")]


def run_sweep(base: TrainConfig, grid: dict[str, list[Any]], out_dir: str | Path, *, jobs: int = 1,
              progress: bool = True, metric: str = "test_acc") -> SweepResult:
    """Train every cell of ``grid`` over ``base``; write ``sweep.csv`` (a row per member) and ``sweep.png``.

    Args:
      base: the shared configuration.
      grid: ``{key: [values]}`` (see :func:`parse_grid`); ``seed``/``lr``/``weight_decay`` are vmapped.
      out_dir: where each cell's folder, ``config.json``, ``sweep.csv`` and ``sweep.png`` go.
      jobs: cells trained at once in separate processes (1: in sequence, in this process).
      progress: a bar over cells (and over steps when ``jobs == 1``).
      metric: the column the summary plot shows.

    Returns:
      A :class:`SweepResult`.

    Example:
      >>> r = run_sweep(TrainConfig(steps=100), {"model": ["mlp", "logistic"], "seed": [0, 1, 2]}, "runs/s")  # doctest: +SKIP
      >>> len(r.rows)  # doctest: +SKIP
      6
    """
    from tqdm.auto import tqdm

    check_grid(grid)
    if jobs < 1:
        raise ValueError(f"run_sweep: jobs must be >= 1, got jobs={jobs}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps({"base": base.to_dict(), "grid": grid}, indent=2))
    vmapped = {k: v for k, v in grid.items() if k in VMAPPED_KEYS}
    todo = cells(grid)
    for cell in todo:
        cell_config(base, cell)  # a bad value fails now, not after other cells have trained
    results: dict[int, list[dict[str, Any]]] = {}
    bar = tqdm(total=len(todo), disable=not progress, desc=f"sweep of {len(todo)} cell(s)", unit="cell")
    if jobs == 1:
        for i, cell in enumerate(todo):
            results[i] = run_cell(base, cell, vmapped, out_dir / cell_name(cell), progress=progress)
            bar.update()
    else:  # spawn: a forked process would inherit JAX's threads
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = {pool.submit(run_cell, base, cell, vmapped, out_dir / cell_name(cell)): i
                       for i, cell in enumerate(todo)}
            for fut in concurrent.futures.as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
    bar.close()
    rows = [row for i in range(len(todo)) for row in results[i]]
    csv_path = out_dir / "sweep.csv"
    write_csv(rows, csv_path)
    plot_path = plot_sweep(rows, grid, out_dir / "sweep.png", metric)
    return SweepResult(out_dir, rows, csv_path, plot_path)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Rows (dicts) to a CSV; the columns are the union of the rows' keys, in first-seen order."""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with Path(path).open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def group_stats(rows: list[dict[str, Any]], by: Sequence[str], metric: str) -> list[dict[str, Any]]:
    """Mean, sample std, 95% CI half-width and count of ``metric`` per distinct ``by`` values (finished rows only).

    Example:
      >>> group_stats([{"m": "a", "acc": 0.5}, {"m": "a", "acc": 0.7}], ["m"], "acc")[0]["mean"]
      0.6
    """
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        if r.get("status", "ok") == "ok":
            groups.setdefault(tuple(r[k] for k in by), []).append(float(r[metric]))
    out = []
    for key, vals in groups.items():
        v = np.asarray(vals)
        std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        out.append({**dict(zip(by, key)), "mean": float(v.mean()), "std": std,
                    "ci95": 1.96 * std / math.sqrt(len(v)), "n": len(v)})
    return out


def plot_sweep(rows: list[dict[str, Any]], grid: dict[str, list[Any]], path: Path, metric: str = "test_acc") -> Path | None:
    """``metric`` (mean and std over seeds) against the first swept key, one line per value of the others."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    swept = [k for k, v in grid.items() if len(v) > 1 and k != "seed"]
    if not rows or metric not in rows[0]:
        return None
    x_key, others = (swept[0], swept[1:]) if swept else (None, [])
    stats = group_stats(rows, ([x_key] if x_key else []) + others, metric)
    fig, ax = plt.subplots(figsize=(6, 4))
    lines: dict[tuple, list[dict]] = {}
    for s in stats:
        lines.setdefault(tuple(s[k] for k in others), []).append(s)
    numeric = x_key is not None and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in grid[x_key])
    for label, pts in lines.items():
        xs = [p[x_key] if x_key else "" for p in pts]
        pos = xs if numeric else [str(x) for x in xs]
        name = ", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in zip(others, label)) or None
        ax.errorbar(pos, [p["mean"] for p in pts], yerr=[p["std"] for p in pts], marker="o", capsize=3, label=name)
    if numeric and x_key in ("lr", "weight_decay") and all(v > 0 for v in grid[x_key]):
        ax.set_xscale("log")
    ax.set_xlabel(x_key or "")
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    if len(lines) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
