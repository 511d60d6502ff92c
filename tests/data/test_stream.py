"""Grain streaming: each epoch visits every example once, in a seeded order; the same batches as asked by index."""

import numpy as np

from cnnjax.data import GrainBatches, InMemoryBatches, load_arrays


def test_grain_epoch_is_a_seeded_permutation_of_the_split():
    g = GrainBatches("digits", 100, seed=0)
    assert g.steps_per_epoch == 14 and g.input_shape == (8, 8, 1) and g.num_classes == 10
    ys = np.concatenate([np.asarray(y) for _, y, _, _ in g.epoch(0, 0, g.steps_per_epoch)])
    full = load_arrays("digits")
    assert len(ys) == 1400 and np.bincount(ys, minlength=10).sum() == 1400
    assert (np.bincount(ys, minlength=10) <= np.bincount(full.y_train, minlength=10)).all()
    again = np.concatenate([np.asarray(y) for _, y, _, _ in g.epoch(0, 0, g.steps_per_epoch)])
    other = np.concatenate([np.asarray(y) for _, y, _, _ in g.epoch(1, 0, g.steps_per_epoch)])
    np.testing.assert_array_equal(ys, again)  # same (seed, epoch): same order
    assert not np.array_equal(ys, other)  # next epoch: reshuffled
    tail = np.concatenate([np.asarray(y) for _, y, _, _ in g.epoch(0, 5, g.steps_per_epoch)])
    np.testing.assert_array_equal(tail, ys[500:])  # starting mid-epoch gives the same remaining batches


def test_grain_batches_are_normalised_and_the_test_split_is_complete():
    g = GrainBatches("digits", 64, seed=0)
    x, y, perm, i = next(g.epoch(0, 0, 1))
    assert x.shape == (64, 8, 8, 1) and perm.shape == (64,) and i == 0
    assert abs(float(x.mean())) < 0.3 and 0.5 < float(x.std()) < 1.5
    assert sum(len(y) for _, y in g.test_batches(100)) == 360


def test_in_memory_epoch_gathers_by_a_seeded_permutation():
    ds = load_arrays("digits")
    b = InMemoryBatches(ds.x_train, ds.y_train, ds.x_test, ds.y_test, 100, seed=3)
    args = list(b.epoch(2, 0, b.steps_per_epoch))
    perm = np.asarray(args[0][2])
    assert sorted(perm.tolist()) == list(range(len(ds.x_train)))
    assert [a[3] for a in args] == list(range(b.steps_per_epoch))
