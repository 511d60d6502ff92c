"""Scripted studies: each is ``python -m experiments.NAME [--quick]`` (or ``cnnjax experiment NAME``).

Every study is configs plus a short script over :mod:`cnnjax.train`; it writes a CSV, PNGs
and a ``REPORT.md`` to ``results/<study>/``. See :mod:`experiments.common`.
"""

STUDIES = (
    "mnist1d_table",
    "mnist1d_shuffled",
    "padding_equivariance",
    "shift_consistency",
    "rotation_gcnn",
    "rotated_digits",
    "normalization_ablation",
    "receptive_field_growth",
    "conv_vs_mlp",
    "mnist1d_lecture",
    "detect_shapes",
    "segment_shapes",
    "saliency_digits",
)
