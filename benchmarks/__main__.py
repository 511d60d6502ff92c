"""The benchmark command: ``python -m benchmarks`` (or ``cnnjax bench``) from a source checkout.

Times the model workloads side by side in one run: cnnjax, cnnjax with XLA ops only, naive Flax, PyTorch
eager and ``torch.compile`` (see :mod:`benchmarks.workloads`), each configuration in its own process; then the
time to build a zoo model, the ensemble workload, per-op timings and the conv strategies. Prints tables with medians, min/max and ratios,
and writes them (Markdown and JSON) with the machine's description to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax

from benchmarks import harness, workloads

SUITES = ("models", "build", "ensemble", "ops", "conv_strategies")


def _fmt_rate(seconds: float) -> str:
    rate = 1 / seconds
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2f}"


def summary_table(rows: list[dict]) -> str:
    """Steps/s, one line per workload and one column per configuration (the README's table)."""
    fws = list(dict.fromkeys(r["framework"] for r in rows))
    lines = ["| workload | " + " | ".join(workloads.FRAMEWORKS[f] for f in fws) + " |", "|---" * (len(fws) + 1) + "|"]
    for name in dict.fromkeys(r["workload"] for r in rows):
        rate = {r["framework"]: _fmt_rate(r["median_s"]) for r in rows if r["workload"] == name}
        lines.append(f"| {name} | " + " | ".join(rate.get(f, "—") for f in fws) + " |")
    return "\n".join(lines)


def model_table(rows: list[dict], peak: float) -> str:
    lines = ["| workload | framework | steps/s median (min-max) | examples/s | compile s | GFLOP/s (% of matmul peak) | memory MB | vs torch eager |",
             "|---|---|---|---|---|---|---|---|"]
    torch_s = {r["workload"]: r["median_s"] for r in rows if r["framework"] == "torch"}
    flops = {r["workload"]: r["flops"] for r in rows if r.get("flops")}
    for r in rows:
        f = flops.get(r["workload"])
        gf = f"{f / r['median_s'] / 1e9:,.0f} ({100 * f / r['median_s'] / peak:.0f}%)" if f else "—"
        ratio = f"{torch_s[r['workload']] / r['median_s']:.2f}x" if r["workload"] in torch_s else "—"
        mem = f"{r['memory_bytes'] / 2**20:,.0f}" if r.get("memory_bytes") else "—"
        lines.append(f"| {r['workload']} | {workloads.FRAMEWORKS[r['framework']]} | {_fmt_rate(r['median_s'])} "
                     f"({_fmt_rate(r['max_s'])}-{_fmt_rate(r['min_s'])}) | {r.get('batch', 0) / r['median_s']:,.0f} | {r.get('compile_s', r['first_s']):.1f} | {gf} | "
                     f"{mem} | {ratio} |")
    return "\n".join(lines)


def ratio_table(rows: list[dict], baseline: str, unit: str = "calls/s") -> str:
    """One line per workload: each framework's rate and its ratio to ``baseline``."""
    lines = [f"| workload | framework | {unit} median (min-max) | GFLOP/s | vs {baseline} |", "|---|---|---|---|---|"]
    base = {r["workload"]: r["median_s"] for r in rows if r["framework"] == baseline}
    for r in rows:
        gf = f"{r['flops'] / r['median_s'] / 1e9:,.1f}" if r.get("flops") else "—"
        ratio = f"{base[r['workload']] / r['median_s']:.2f}x" if r["workload"] in base else "—"
        lines.append(f"| {r['workload']} | {r['framework']} | {_fmt_rate(r['median_s'])} ({_fmt_rate(r['max_s'])}-"
                     f"{_fmt_rate(r['min_s'])}) | {gf} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=SUITES, default=list(SUITES), help="which suites to run")
    p.add_argument("--frameworks", default=",".join(workloads.FRAMEWORKS),
                   help=f"comma-separated, from: {', '.join(workloads.FRAMEWORKS)}")
    p.add_argument("--same-process", action="store_true",
                   help="time every model configuration in this process (default: each in a fresh one)")
    p.add_argument("--compute-dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--models", default=None,
                   help="comma-separated zoo names: time only these model workloads (default: all)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="small shapes and few workloads (a smoke test)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="where the tables go")
    p.add_argument("--tag", default=None, help="file name stem for the results (default: the backend)")
    args = p.parse_args(argv)
    from cnnjax.backends.cpu import keep_freed_memory

    keep_freed_memory()  # as cnnjax train does: see cnnjax.backends.cpu.host_memory
    from benchmarks import conv_strategies, ops

    frameworks = tuple(args.frameworks.split(","))
    unknown = [f for f in frameworks if f not in workloads.FRAMEWORKS]
    if unknown:
        p.error(f"--frameworks: unknown {', '.join(unknown)}; choose from: {', '.join(workloads.FRAMEWORKS)}")
    backend = jax.default_backend()
    info = harness.machine()
    peak = harness.matmul_peak("bfloat16" if args.compute_dtype == "bfloat16" else "float32")
    info["matmul_peak_gflops"] = round(peak / 1e9, 1)
    print(" | ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    sections, results = [], {"machine": info, "date": time.strftime("%Y-%m-%d")}
    if "models" in args.only:
        rows = []
        chosen = workloads.workloads(backend, args.quick)[: 2 if args.quick else None]
        if args.models:
            names = args.models.split(",")
            unknown = sorted(set(names) - {w.model for w in workloads.workloads(backend)})
            if unknown:
                p.error(f"--models: no workload for {', '.join(unknown)}; choose from: "
                        + ", ".join(dict.fromkeys(w.model for w in workloads.workloads(backend))))
            chosen = [w for w in workloads.workloads(backend) if w.model in names]
        for w in chosen:
            rows += workloads.time_workload(w, frameworks, compute_dtype=args.compute_dtype, repeats=args.repeats,
                                            torch_device="cuda" if backend == "gpu" else "cpu",
                                            isolate=not args.same_process)
            print(f"  {w.name}: " + ", ".join(f"{r['framework']} {_fmt_rate(r['median_s'])}/s" for r in rows
                                               if r["workload"] == w.name), flush=True)
        results["models"] = rows
        sections.append(f"## Training and inference workloads ({args.compute_dtype}), steps/s\n\n" + summary_table(rows)
                        + "\n\n### In detail\n\n" + model_table(rows, peak))
    if "build" in args.only:
        from benchmarks import build

        rows = build.build_rows(args.quick)
        results["build"] = rows
        sections.append("## Building a model, each in a fresh process after the imports\n\n" + build.build_table(rows))
    if "ensemble" in args.only:
        rows = workloads.ensemble_rows(repeats=args.repeats)
        results["ensemble"] = rows
        seq = rows[0]["median_s"]
        sections.append("## Ensembles: 8 MNIST-1D CNNs, one SGD step each\n\n" + ratio_table(rows, rows[0]["framework"], "rounds/s")
                        + f"\n\nvmapped throughput = {seq / rows[1]['median_s']:.1f}x sequential")
    if "ops" in args.only:
        rows = ops.op_rows(args.quick, args.repeats)
        results["ops"] = rows
        sections.append("## Ops, forward + backward\n\n" + ratio_table(rows, "torch"))
    if "conv_strategies" in args.only and backend == "cpu":
        rows = conv_strategies.strategy_rows(args.quick, args.repeats)
        results["conv_strategies"] = rows
        sections.append("## Conv strategies (cnnjax on CPU)\n\n" + ratio_table(rows, "cnnjax, lax"))
    header = (f"# Benchmarks: {info['devices']} ({backend})\n\n{time.strftime('%Y-%m-%d')}. " +
              ", ".join(f"{k} {v}" for k, v in info.items()) +
              ". Medians of the timed repeats after a warm-up; (min-max) is the slowest and fastest repeat. "
              "'vs' columns are speed ratios measured side by side in this one run.")
    text = header + "\n\n" + "\n\n".join(sections) + "\n"
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.tag or f"{backend}{'-quick' if args.quick else ''}"
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
