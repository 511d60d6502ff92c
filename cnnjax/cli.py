"""The ``cnnjax`` command."""

from __future__ import annotations

import argparse
import sys

_PENDING = {
    "train": "the training engine (issue: training engine and the main job)",
    "eval": "the training engine (issue: training engine and the main job)",
    "sweep": "experiments/ (issue: scripted studies and ablations)",
    "bench": "benchmarks/ (issue: performance)",
    "experiment": "experiments/ (issue: scripted studies and ablations)",
}


def _overview() -> str:
    import jax

    import cnnjax
    from cnnjax import functional, inspect, models, nn

    ops = ", ".join(name for name in functional.__all__ if name != "filters")
    filters = ", ".join(n for n in ("sobel", "prewitt", "box", "gaussian", "laplacian_of_gaussian", "gabor"))
    return (
        f"cnnjax {cnnjax.__version__} on jax {jax.__version__}, devices: {', '.join(map(str, jax.devices()))}\n"
        f"cnnjax.functional: {ops}\n"
        f"cnnjax.functional.filters: {filters}\n"
        f"cnnjax.nn: {', '.join(n for n in nn.__all__ if n[0].isupper())}\n"
        f"cnnjax.models ({len(models.list_models())}): {', '.join(models.list_models())}\n"
        f"cnnjax.inspect: {', '.join(n for n in inspect.__all__ if n[0].islower())}"
    )


def _edge_demo() -> str:
    """The course's vertical-edge example, computed by cnnjax.functional.conv."""
    import jax.numpy as jnp

    from cnnjax.functional import conv

    image = jnp.array([[10.0] * 3 + [0.0] * 3] * 6)[..., None]
    kernel = jnp.array([[1.0, 0.0, -1.0]] * 3)[..., None, None]
    rows = conv(image, kernel)[..., 0].astype(int).tolist()
    return "vertical-edge kernel on a 10|0 image:\n" + "\n".join(f"  {r}" for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnjax", description="cnnjax: a JAX/Flax library for CNN research")
    sub = parser.add_subparsers(dest="command")
    for name in _PENDING:
        p = sub.add_parser(name, help=f"(not yet available: needs {_PENDING[name]})")
        p.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    print(_overview())
    if args.command is None:
        print(_edge_demo())
        return 0
    print(
        f"`cnnjax {args.command}` is not available yet: it arrives with {_PENDING[args.command]}.\n"
        "What exists today is the functional core above; a demo of it:"
    )
    print(_edge_demo())
    return 0


if __name__ == "__main__":
    sys.exit(main())
