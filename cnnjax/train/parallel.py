"""Data parallelism: one mesh over the devices of every process, the batch sharded, the state replicated.

One process drives all of a machine's local devices. Several processes (one per host, or one per
GPU) join through :func:`initialize`, which wraps ``jax.distributed.initialize``; after that the
mesh spans every process's devices, each process reads only its rows of a streamed batch, and
process 0 alone writes the run directory's metrics, plots and config. A two-process run gives the
same parameters as a one-process run on the same number of devices, to float tolerance (tested
on CPU with two processes of two forced devices each).
"""

from __future__ import annotations

from typing import Callable, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

T = TypeVar("T")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join a multi-process run; call it in every process before any other JAX call.

    Args:
      coordinator_address: ``host:port`` of process 0, reachable from every process. ``None`` with
        the other two ``None`` lets JAX detect the cluster (SLURM, Open MPI, TPU pods, Kubernetes)
        or read ``JAX_COORDINATOR_ADDRESS``.
      num_processes: the number of processes in the run.
      process_id: this process's index, ``0 <= process_id < num_processes``.

    Example (two hosts, the same command on each with its own ``--process-id``):
      ``cnnjax train --coordinator host0:1234 --num-processes 2 --process-id 0``
    """
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise ValueError(
            "a multi-process run needs all of coordinator_address (--coordinator), num_processes (--num-processes) "
            f"and process_id (--process-id), or none of them for cluster auto-detection; got "
            f"coordinator_address={coordinator_address!r}, num_processes={num_processes!r}, process_id={process_id!r}"
        )
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}")
    if jax.distributed.is_initialized():
        return
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_main_process() -> bool:
    """True in process 0, the one that writes files and shows progress."""
    return jax.process_index() == 0


def main_only(fn: Callable[[], T], name: str) -> T | None:
    """Run ``fn`` in process 0 only, and let every process wait there until it is done (``name`` labels
    the barrier). For changes to a shared disk, such as clearing a run's old checkpoints."""
    if jax.process_count() == 1:
        return fn()
    out = fn() if is_main_process() else None
    multihost_utils.sync_global_devices(name)
    return out


def main_first(fn: Callable[[], T], name: str) -> T:
    """Run ``fn`` in process 0, wait for it everywhere, then in the other processes.

    For work whose result every process needs and whose side effects go to a shared disk, such as
    preparing a dataset: the others then find it done.
    """
    out = main_only(fn, name)
    return out if is_main_process() else fn()


def data_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D ``Mesh`` named ``"data"`` over the first ``num_devices`` local devices (default: all), or,
    in a multi-process run, over every process's devices.

    The same code runs on one CPU, one GPU, several GPUs, a TPU slice, or several hosts after
    :func:`initialize`.
    """
    if jax.process_count() > 1:
        if num_devices is not None:
            raise ValueError(
                f"num_devices={num_devices} selects local devices, but this is a {jax.process_count()}-process run; "
                "multi-process runs use every device of every process (leave num_devices unset)"
            )
        return Mesh(np.array(jax.devices()), ("data",))
    devices = jax.local_devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"num_devices={num_devices}, but {len(devices)} local device(s) exist: {devices}")
        devices = devices[:num_devices]
    return Mesh(np.array(devices), ("data",))

