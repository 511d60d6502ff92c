"""What every study shares: its command line, its results folder, tables, plots and the report.

A study is a module with a docstring (its title line and a description), ``get_config(quick)``
(a plain dict, saved as ``config.json`` beside the results) and ``run(study)``, which trains
through :mod:`cnnjax.train` and fills ``results/<study>/``. :func:`main` is its command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnnjax.cli import ArgumentParser  # noqa: E402
from cnnjax.data import DatasetNotFoundError  # noqa: E402
from cnnjax.train import CheckpointError, TrainingError, group_stats  # noqa: E402
from cnnjax.train.sweep import scalar, write_csv  # noqa: E402

__all__ = ["Study", "main", "group_stats", "write_csv", "markdown_table", "bar_plot", "line_plot", "image_panels", "fmt"]


@dataclasses.dataclass
class Study:
    name: str
    out: Path
    quick: bool
    config: dict[str, Any]
    progress: bool
    report: list[str] = dataclasses.field(default_factory=list)  # markdown paragraphs, in order

    def add(self, *paragraphs: str) -> None:
        self.report.extend(paragraphs)


def main(module_file: str, doc: str, get_config: Callable[[bool], dict], run: Callable[[Study], None],
         argv: Sequence[str] | None = None) -> int:
    """Parse ``--quick/--out/--quiet``, save the config, run the study, write ``REPORT.md``; print where.

    ``module_file`` is the study's ``__file__`` (its name is the study's name).
    """
    name = Path(module_file).stem
    title = doc.strip().splitlines()[0]
    parser = ArgumentParser(prog=f"python -m experiments.{name}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke version that runs in seconds (used by the tests)")
    parser.add_argument("--out", default=None, help=f"results folder (default: results/{name}, quick: results/{name}-quick)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a top-level config value, e.g. --set dataset=cifar10")
    args = parser.parse_args(argv)
    out = Path(args.out or f"results/{name}{'-quick' if args.quick else ''}")
    config = get_config(args.quick)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in config:
            parser.error(f"--set {item!r}: expected KEY=VALUE with KEY one of {sorted(config)}")
        config[key] = scalar(value)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    made = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)  # the top folder this call makes
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    study = Study(name, out, args.quick, config, not args.quiet)
    print(f"{name}{' (quick)' if args.quick else ''}: {title} -> {out}/")
    resumed = (out / "runs").exists()  # run_sweep reads finished cells back instead of training them
    t0 = time.perf_counter()
    try:
        run(study)
    except (DatasetNotFoundError, TrainingError, CheckpointError, ValueError) as e:
        if made is not None:  # a study that could not start leaves no folder behind
            shutil.rmtree(made, ignore_errors=True)
        print(f"{parser.prog}: error: {' '.join(line.strip() for line in str(e).splitlines())}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    if resumed:
        trained = sum(json.loads(f.read_text()).get("wall_s", 0.0) for f in (out / "runs").rglob("summary.json"))
        took = f"{wall:.0f} s (finished cells were read back from `runs/`; their training loops took {trained:.0f} s)"
    else:
        took = f"{wall:.0f} s"
    footer = (f"Run: `python -m experiments.{name}{' --quick' if args.quick else ''}`, {took} on "
              f"{jax.devices()[0].platform.upper()} ({platform.processor() or platform.machine()}), jax {jax.__version__}. "
              f"Config: `config.json`; one row per run: `{name}.csv`.")
    text = "\n\n".join([f"# {title}", *study.report, footer]) + "\n"
    (out / "REPORT.md").write_text(text)
    print(f"wrote {out}/REPORT.md ({wall:.0f} s)")
    return 0


def fmt(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    """``94.1 ± 0.6``: a mean and std (scaled, e.g. accuracy to percent).

    Example:
      >>> fmt(0.941, 0.006)
      '94.1 ± 0.6'
    """
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub-markdown table of ``rows`` (dicts), columns in the given or first-seen order.

    Example:
      >>> print(markdown_table([{"model": "mlp", "acc": "68.0"}]))
      | model | acc |
      |---|---|
      | mlp | 68.0 |
    """
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _save(fig: Any, path: Path, *, dpi: int) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def bar_plot(stats: list[dict[str, Any]], x: str, path: Path, *, hue: str | None = None, ylabel: str = "",
             title: str = "", reference: dict[Any, float] | None = None, scale: float = 100.0) -> Path:
    """Grouped bars of ``mean`` with ``std`` error bars (from :func:`group_stats`); ``reference`` marks published values."""
    xs = list(dict.fromkeys(s[x] for s in stats))
    hues = list(dict.fromkeys(s[hue] for s in stats)) if hue else [None]
    width = 0.8 / len(hues)
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(xs) * max(1, len(hues)) ** 0.5), 3.8))
    for j, h in enumerate(hues):
        pts = {s[x]: s for s in stats if hue is None or s[hue] == h}
        pos = [i + (j - (len(hues) - 1) / 2) * width for i, v in enumerate(xs) if v in pts]
        vals = [pts[v] for v in xs if v in pts]
        ax.bar(pos, [p["mean"] * scale for p in vals], width, yerr=[p["std"] * scale for p in vals], capsize=3,
               label=None if h is None else f"{hue}={h}")
    if reference:
        ref = [(i, reference[v] * scale) for i, v in enumerate(xs) if v in reference]
        ax.scatter([i for i, _ in ref], [r for _, r in ref], marker="_", s=900, color="black", zorder=3, label="published")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=20 if len(xs) > 4 else 0, ha="right" if len(xs) > 4 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if hue or reference:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path, dpi=120)


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path, *, xlabel: str = "",
              ylabel: str = "", title: str = "", logy: bool = False, errors: dict[str, Sequence[float]] | None = None,
              styles: dict[str, dict] | None = None) -> Path:
    """One line per ``label: (xs, ys)``; optional ``errors`` (error bars) and matplotlib ``styles`` per label."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (xs, ys) in series.items():
        style = {"marker": "o", "ms": 3, **(styles or {}).get(label, {})}
        ax.errorbar(xs, ys, yerr=(errors or {}).get(label), capsize=2, label=label, **style)
    if logy:
        ax.set_yscale("symlog", linthresh=1e-7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path, dpi=120)


def image_panels(panels: Sequence[tuple[str, Any, dict]], path: Path, *, suptitle: str = "", axes_off: bool = True,
                 size: float = 3.2, labels: tuple[str, str] | None = None) -> Path:
    """Images side by side: ``(title, 2-D array, imshow keyword arguments)`` per panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    for ax, (title, image, kw) in zip(axes[0], panels):
        ax.imshow(image, **kw)
        ax.set_title(title, fontsize=9)
        if axes_off:
            ax.axis("off")
        elif labels:
            ax.set_xlabel(labels[0])
            ax.set_ylabel(labels[1])
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return _save(fig, path, dpi=110)
