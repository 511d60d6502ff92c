"""Run-directory metrics: JSONL and CSV rows, TensorBoard event files (read back record by record), the plot."""

import csv
import json
import struct

import pytest

from cnnjax.train.metrics import MetricsWriter, plot_curves

ROWS = [
    {"step": 10, "epoch": 1, "train_loss": 2.0, "train_acc": 0.25, "test_loss": 1.5, "test_acc": 0.5, "wall_s": 1.0},
    {"step": 20, "epoch": 2, "train_loss": 1.0, "train_acc": 0.75, "test_loss": 0.875, "test_acc": 0.8125, "wall_s": 2.0},
]


def _events(path):
    """Scalar summaries ``(tag, step, value)`` in a TensorBoard event file, parsed from its TFRecord framing
    (length, length CRC, payload, payload CRC) with tensorboardX's own protobuf."""
    from tensorboardX.proto import event_pb2

    data, i, out = path.read_bytes(), 0, []
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
        i += 12 + n + 4
        out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
    return out


def test_jsonl_and_csv_hold_every_row_and_rewrite_replaces_them(tmp_path):
    w = MetricsWriter(tmp_path)
    for r in ROWS:
        w.append(r)
    w.close()
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == ROWS
    with (tmp_path / "metrics.csv").open() as f:
        got = list(csv.DictReader(f))
    assert [{k: float(v) for k, v in r.items()} for r in got] == [{k: float(v) for k, v in r.items()} for r in ROWS]
    w = MetricsWriter(tmp_path)
    w.rewrite(ROWS[:1])  # a resume from the first evaluation
    w.close()
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == ROWS[:1]


def test_disabled_writer_writes_nothing(tmp_path):
    w = MetricsWriter(tmp_path, enabled=False)  # the other processes of a multi-process run
    w.rewrite([])
    w.append(ROWS[0])
    w.close()
    assert list(tmp_path.iterdir()) == []


def test_tensorboard_event_files_hold_the_scalars(tmp_path):
    pytest.importorskip("tensorboardX")
    w = MetricsWriter(tmp_path)
    for r in ROWS:
        w.append(r)
    w.close()
    files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    got = sorted(_events(files[0]))
    want = sorted((k, r["step"], float(v)) for r in ROWS for k, v in r.items() if k != "step")
    assert got == want  # the values are exact in float32


def test_plot_curves_writes_a_png(tmp_path):
    path = plot_curves(ROWS, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
