"""Batches for training: held on the device for small datasets, streamed through Grain for big ones.

Both providers give a step the same arguments ``(x, y, perm, i)``: in memory, ``x``/``y`` are
the whole split and ``perm[i*B:(i+1)*B]`` picks the batch on the device; streamed, ``x``/``y``
are one batch and ``perm`` is the identity. Either way the order is a function of
``(seed, epoch, batch index)``, so a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

from typing import Any, Iterator

import grain
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.data.load import as_model_input, builder, channel_stats

STREAM_THRESHOLD_BYTES = 1 << 30  # datasets above ~1 GB stream instead of living on the device


def epoch_permutation(seed: jax.Array | int, epoch: int, n: int) -> jax.Array:
    """The order of epoch ``epoch``: a permutation of ``range(n)`` drawn from ``fold_in(key(seed), epoch)``.

    Single runs and vmapped ensemble members both use it, so member ``seed`` sees the same batches as
    the single run with that seed.
    """
    return jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), n)


class InMemoryBatches:
    """The split on the device; each epoch is a permutation drawn from ``fold_in(key(seed), epoch)``."""

    def __init__(self, x_train, y_train, x_test, y_test, batch_size: int, seed: int, sharding: Any = None,
                 num_classes: int | None = None):
        put = (lambda a: jax.device_put(a, sharding)) if sharding is not None else jnp.asarray
        self.x, self.y, self.x_test, self.y_test = (put(a) for a in (x_train, y_train, x_test, y_test))
        self.input_shape, self.num_classes = tuple(x_train.shape[1:]), num_classes
        self.n, self.batch_size, self.seed = len(x_train), batch_size, seed
        self.steps_per_epoch = self.n // batch_size

    def epoch(self, epoch: int, start: int, stop: int) -> Iterator[tuple]:
        perm = epoch_permutation(self.seed, epoch, self.n)
        for i in range(start, stop):
            yield self.x, self.y, perm, i

    def test_batches(self, batch: int = 1000) -> Iterator[tuple]:
        for i in range(0, len(self.x_test), batch):
            yield self.x_test[i : i + batch], self.y_test[i : i + batch]


class GrainBatches:
    """A TFDS ``array_record`` split streamed through Grain: shuffled per epoch, batched, prefetched by threads.

    Normalisation statistics come from (up to) the first ``stats_examples`` training examples.

    With ``batch_sharding`` (a ``NamedSharding`` of the batch over every process's devices), each
    process reads only its own rows of each global batch, ``batch_size / process_count`` of them,
    and the batch is assembled as one global array; ``sharding`` places the test batches.
    """

    def __init__(self, name: str, batch_size: int, seed: int, data_dir: str | None = None, *,
                 threads: int = 4, prefetch: int = 8, stats_examples: int = 10_000,
                 batch_sharding: Any = None, sharding: Any = None):
        if batch_size % jax.process_count():
            raise ValueError(f"batch_size={batch_size} must be divisible by the number of processes ({jax.process_count()})")
        self.batch_sharding, self.sharding = batch_sharding, sharding
        b = builder(name, data_dir)
        self.x_key, self.y_key = b.info.supervised_keys
        self.num_classes = b.info.features[self.y_key].num_classes
        self.train, self.test = b.as_data_source(split="train"), b.as_data_source(split="test")
        self.batch_size, self.seed = batch_size, seed
        self.steps_per_epoch = len(self.train) // batch_size
        self.read = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
        records = self.train.__getitems__(list(range(min(stats_examples, len(self.train)))))
        sample = np.stack([as_model_input(np.asarray(r[self.x_key])) for r in records])
        self.mean, self.std = channel_stats(sample)
        self.input_shape = sample.shape[1:]

    def _example(self, record):
        x = as_model_input(np.asarray(record[self.x_key]))
        return (x - self.mean) / self.std, np.int32(record[self.y_key])

    def _dataset(self, source, shuffle_seed: int | None, batch_size: int | None = None) -> grain.MapDataset:
        ds = grain.MapDataset.source(source)
        if shuffle_seed is not None:
            ds = ds.shuffle(seed=shuffle_seed)
        return ds.map(self._example).batch(batch_size or self.batch_size, drop_remainder=shuffle_seed is not None)

    def epoch(self, epoch: int, start: int, stop: int) -> Iterator[tuple]:
        shuffle_seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        # Global batch i is local batch i*P + p of process p, P processes: the same records in the same order
        # as one process reading whole batches.
        n, p = jax.process_count(), jax.process_index()
        batches = self._dataset(self.train, shuffle_seed, self.batch_size // n)[start * n + p : stop * n : n]
        ident = self._put(np.arange(self.batch_size), self.sharding)
        for x, y in batches.to_iter_dataset(self.read):
            x = np.asarray(x, np.float32)
            if self.batch_sharding is None:
                yield jnp.asarray(x), jnp.asarray(y), ident, 0
            else:
                yield (jax.make_array_from_process_local_data(self.batch_sharding, x),
                       jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(y)), ident, 0)

    def test_batches(self, batch: int = 1000) -> Iterator[tuple]:
        for x, y in self._dataset(self.test, None).to_iter_dataset(self.read):
            yield self._put(np.asarray(x, np.float32), self.sharding), self._put(np.asarray(y), self.sharding)

    @staticmethod
    def _put(a: np.ndarray, sharding: Any) -> jax.Array:
        return jnp.asarray(a) if sharding is None else jax.device_put(a, sharding)


def dataset_bytes(name: str, data_dir: str | None = None) -> int:
    """The prepared dataset's size on disk, as TFDS records it."""
    return int(builder(name, data_dir).info.dataset_size or 0)
