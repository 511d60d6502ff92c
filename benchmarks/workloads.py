"""Model workloads timed the same way in five configurations (the keys of :data:`FRAMEWORKS`).

- ``cnnjax``: :func:`cnnjax.train.step.make_train_step`, the step ``cnnjax.train.fit`` runs: one jitted
  function of ``(state, data, permutation, index)`` with the state donated and the data on the device.
- ``xla``: the same step and zoo model under ``conv_strategy("lax")``: every op is its ``lax`` maths, so the
  difference from ``cnnjax`` is what the platform's backend (:mod:`cnnjax.backends`) buys.
- ``flax``: the twin from :mod:`benchmarks.flax_models`, written as Flax's examples write models (``nnx.Conv``,
  ``nnx.BatchNorm``, ``nnx.max_pool``), trained the way they train: ``nnx.Optimizer`` and an ``nnx.jit`` step
  taking ``(model, optimizer, x, y)``, its batches already on the device. No cnnjax code runs.
- ``torch``: the twin from :mod:`benchmarks.torch_models` (same parameter count), channels_last for 2-D inputs,
  ``zero_grad / backward / step``, eager.
- ``torch.compile``: the same with the model wrapped in ``torch.compile`` (default mode).

With ``isolate=True`` each configuration runs in its own fresh process, so no framework's threads, allocator
state or caches touch another's timings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks import flax_models
from benchmarks.harness import in_fresh_process, jax_sync, timeit
from cnnjax import models
from cnnjax.functional import conv_strategy
from cnnjax.inspect import count_params
from cnnjax.train.step import cast_floating, check_compute_dtype, init_state, jit_step, make_train_step


FRAMEWORKS = {"cnnjax": "cnnjax", "xla": "cnnjax, XLA ops only", "flax": "naive Flax", "torch": "torch eager",
              "torch.compile": "torch.compile"}


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    model: str
    input_shape: tuple[int, ...]  # channels-last, without the batch
    batch: int
    num_classes: int = 10
    optimizer: str = "momentum"  # sgd | momentum
    train: bool = True  # False: forward only (eval mode)
    segmentation: bool = False  # per-pixel labels


def workloads(backend: str, quick: bool = False) -> list[Workload]:
    gpu = backend != "cpu"
    r50_batch = 256 if gpu else (2 if quick else 8)
    return [
        Workload("MNIST-1D CNN (2,050 params), batch 100, SGD", "mnist1d_cnn", (40, 1), 100, optimizer="sgd"),
        Workload("SimpleCNN 1x28x28, batch 128, SGD momentum", "simple_cnn", (28, 28, 1), 128),
        Workload("CIFAR ResNet-20, batch 128", "resnet20", (32, 32, 3), 128),
        Workload("ResNet-18 on 32x32, batch 128", "resnet18", (32, 32, 3), 128),
        Workload(f"ResNet-50 224x224 forward, batch {r50_batch}", "resnet50", (224, 224, 3), r50_batch, 1000, train=False),
        Workload(f"ResNet-50 224x224 training step, batch {r50_batch}", "resnet50", (224, 224, 3), r50_batch, 1000),
        Workload(f"U-Net 64x64, batch {32 if gpu else 4}, forward+backward", "unet", (64, 64, 1), 32 if gpu else 4, 2,
                 segmentation=True),
        # the modern families' depthwise and grouped convs; PyTorch side: torchvision's models, where installed
        Workload(f"EfficientNet-B0 224x224 forward, batch {r50_batch}", "efficientnet_b0", (224, 224, 3), r50_batch, 1000,
                 train=False),
        Workload(f"MobileNetV3-Large 224x224 forward, batch {r50_batch}", "mobilenet_v3_large", (224, 224, 3), r50_batch,
                 1000, train=False),
        Workload(f"ConvNeXt-T 224x224 forward, batch {r50_batch}", "convnext_tiny", (224, 224, 3), r50_batch, 1000,
                 train=False),
    ]


def _tx(w: Workload) -> optax.GradientTransformation:
    return optax.sgd(0.01, momentum=0.9 if w.optimizer == "momentum" else None)


def _data(w: Workload, n_batches: int = 4, dtype=jnp.float32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_batches * w.batch, *w.input_shape)).astype(np.float32)
    label_shape = (n_batches * w.batch, *w.input_shape[:-1]) if w.segmentation else (n_batches * w.batch,)
    y = rng.integers(0, w.num_classes, label_shape).astype(np.int32)
    return x, y


def _loss(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y).mean()


def _model(w: Workload) -> nnx.Module:
    return models.create(w.model, num_classes=w.num_classes, in_channels=w.input_shape[-1], rngs=nnx.Rngs(0))


def cnnjax_runner(w: Workload, compute_dtype: str = "float32") -> tuple[Callable, Callable, dict]:
    """``(run, sync, info)``: ``run()`` does one step; ``info`` has the step's XLA FLOPs and memory.

    Per-pixel labels (segmentation) go through the same step: its loss and accuracy are elementwise.
    """
    model = _model(w)
    x_np, y_np = _data(w)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    info = {"params": count_params(model)}
    if w.train:
        tx = _tx(w)
        tdef, _, state = init_state(model, tx, 0)
        step = make_train_step(tdef, tx, w.batch, compute_dtype=compute_dtype)
        perm = jnp.arange(len(x))
        holder = {"state": state, "i": 0}
        info.update(compiled_stats(step, state, x, y, perm, 0))

        def run():
            holder["state"] = step(holder["state"], x, y, perm, holder["i"] % 4)
            holder["i"] += 1
            return holder["state"]["step"]

        return run, jax_sync, info
    model.eval()
    gdef, params, rest = nnx.split(model, nnx.Param, ...)
    dtype = check_compute_dtype(compute_dtype)
    fwd = jit_step(lambda p, r, xb: nnx.merge(gdef, cast_floating(p, dtype), r, copy=True)(xb.astype(dtype)))
    xb = x[: w.batch]
    info.update(compiled_stats(fwd, params, rest, xb))
    return (lambda: fwd(params, rest, xb)), jax_sync, info


def compiled_stats(fn, *args) -> dict:
    """Compile time, XLA's FLOP count and the memory one call needs (arguments + outputs + temporaries - aliased)."""
    out = {}
    try:
        t = time.perf_counter()
        lowered = fn.lower(*args)
        compiled = lowered.compile()
        out["compile_s"] = time.perf_counter() - t
        # counted on the CPU lowering of XLA's convolutions: GPU lowerings report no FLOPs for convs (they
        # become cuDNN calls), nor do oneDNN's calls
        raw = getattr(fn, "__wrapped__", fn)
        with conv_strategy("lax"):  # a new function: JAX caches fn's trace, made with the strategies it ran with
            cost = jax.jit(lambda *a: raw(*a)).trace(*args).lower(lowering_platforms=("cpu",)).cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        if cost and cost.get("flops", 0) > 0:
            out["flops"] = float(cost["flops"])
        mem = compiled.memory_analysis()
        if mem is not None:
            out["memory_bytes"] = int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                                      - mem.alias_size_in_bytes)
    except Exception:  # best effort: not every backend reports these
        pass
    return out


def flax_runner(w: Workload) -> tuple[Callable, Callable, dict] | None:
    """The Flax twin in the straightforward NNX loop: ``nnx.Optimizer`` and an ``nnx.jit`` step per batch; None
    for the models without one."""
    if w.model not in flax_models.BUILDERS:
        return None
    model = flax_models.BUILDERS[w.model](w.num_classes, rngs=nnx.Rngs(0))
    x_np, y_np = _data(w)
    xs = [jnp.asarray(x_np[i * w.batch:(i + 1) * w.batch]) for i in range(4)]
    ys = [jnp.asarray(y_np[i * w.batch:(i + 1) * w.batch]) for i in range(4)]
    if not w.train:
        model.eval()
        fwd = nnx.jit(lambda m, xb: m(xb))
        return (lambda: fwd(model, xs[0])), jax_sync, {"params": count_params(model)}
    model.train()
    optimizer = nnx.Optimizer(model, _tx(w), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, xb, yb):
        loss, grads = nnx.value_and_grad(lambda m: _loss(m(xb), yb))(model)
        optimizer.update(model, grads)
        return loss

    counter = {"i": 0}

    def run():
        i = counter["i"] % 4
        counter["i"] += 1
        return train_step(model, optimizer, xs[i], ys[i])

    return run, jax_sync, {"params": count_params(model)}


def torch_runner(w: Workload, device: str = "cpu", bf16: bool = False,
                 compile: bool = False) -> tuple[Callable, Callable, dict] | None:
    """PyTorch on the twin model, eager or through ``torch.compile``; None when torch (or the twin) is missing."""
    try:
        import torch
        import torch.nn.functional as tf

        from benchmarks import torch_models

        torch.manual_seed(0)
        model = torch_models.BUILDERS[w.model](num_classes=w.num_classes).to(device)
    except (ImportError, KeyError):  # no torch, no twin, or a torchvision twin without torchvision
        return None
    two_d = len(w.input_shape) == 3
    fmt = torch.channels_last if two_d else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x_np, y_np = _data(w)
    x = torch.from_numpy(np.moveaxis(x_np, -1, 1).copy()).to(device).contiguous(memory_format=fmt)
    y = torch.from_numpy(y_np).long().to(device)
    xs, ys = x.reshape(4, w.batch, *x.shape[1:]).unbind(0), y.reshape(4, w.batch, *y.shape[1:]).unbind(0)
    xs = [xb.contiguous(memory_format=fmt) for xb in xs]
    sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (lambda _: None)
    autocast = lambda: torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    info = {"params": torch_models.param_count(model)}
    if compile:
        model = torch.compile(model)
    if not w.train:
        model.eval()

        def forward():
            with torch.no_grad(), autocast():
                return model(xs[0])

        return forward, sync, info
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9 if w.optimizer == "momentum" else 0.0)
    counter = {"i": 0}

    def run():
        i = counter["i"] % 4
        counter["i"] += 1
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = tf.cross_entropy(model(xs[i]).float(), ys[i])
        loss.backward()
        opt.step()
        return loss

    return run, sync, info


def time_one(w: Workload, fw: str, *, compute_dtype: str = "float32", repeats: int = 5,
             torch_device: str = "cpu") -> dict | None:
    """One configuration's row: seconds per step (median/min/max), first-call time, params, FLOPs, memory.

    None where the configuration cannot run here (torch missing; Flax's twin in bfloat16).
    """
    if fw not in FRAMEWORKS:
        raise ValueError(f"time_one: unknown framework {fw!r}; allowed: {', '.join(FRAMEWORKS)}")
    with conv_strategy("lax") if fw == "xla" else contextlib.nullcontext():  # in jit's cache key: held while timing
        if fw in ("cnnjax", "xla"):
            runner = cnnjax_runner(w, compute_dtype)
        elif fw == "flax":
            runner = flax_runner(w) if compute_dtype == "float32" else None
        else:
            runner = torch_runner(w, torch_device, bf16=compute_dtype == "bfloat16", compile=fw == "torch.compile")
        if runner is None:
            return None
        run, sync, info = runner
        return {"workload": w.name, "framework": fw, "batch": w.batch, **info,
                **timeit(run, sync, repeats=repeats, inner=2 if w.model in ("resnet50", "unet") else 10)}


def _time_one_fresh(w: Workload, fw: str, kwargs: dict) -> dict | None:
    from cnnjax.backends.cpu import keep_freed_memory

    keep_freed_memory()  # as the parent (and cnnjax train) does
    return time_one(w, fw, **kwargs)


def time_workload(w: Workload, frameworks: tuple[str, ...], *, compute_dtype: str = "float32", repeats: int = 5,
                  torch_device: str = "cpu", isolate: bool = False) -> list[dict]:
    """One row per framework that can run here (see :func:`time_one`), each in a fresh process if ``isolate``."""
    kwargs = dict(compute_dtype=compute_dtype, repeats=repeats, torch_device=torch_device)
    rows = []
    for fw in frameworks:
        row = in_fresh_process(_time_one_fresh, w, fw, kwargs) if isolate else time_one(w, fw, **kwargs)
        if row is not None:
            rows.append(row)
    return rows


def ensemble_rows(k: int = 8, repeats: int = 5) -> list[dict]:
    """``k`` MNIST-1D CNNs: one vmapped program vs ``k`` jitted steps one after another."""
    w = Workload("MNIST-1D CNN ensemble", "mnist1d_cnn", (40, 1), 100, optimizer="sgd")
    tx = _tx(w)
    x_np, y_np = _data(w)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    perm = jnp.arange(len(x))
    states, tdef = [], None
    for seed in range(k):
        tdef, _, s = init_state(models.create("mnist1d_cnn", rngs=nnx.Rngs(seed)), tx, seed)
        states.append(s)
    step = make_train_step(tdef, tx, w.batch, jit=False)
    single = jit_step(step, donate_argnums=0)
    vstep = jit_step(jax.vmap(step, in_axes=(0, None, None, None, None)), donate_argnums=0)
    holder = {"one": states, "all": jax.tree.map(lambda *a: jnp.stack(a), *states)}

    def sequential():
        holder["one"] = [single(s, x, y, perm, 0) for s in holder["one"]]
        return holder["one"][-1]["step"]

    def vmapped():
        holder["all"] = vstep(holder["all"], x, y, perm, 0)
        return holder["all"]["step"]

    rows = []
    for label, run in ((f"{k} seeds one after another", sequential), (f"{k} seeds vmapped in one program", vmapped)):
        rows.append({"workload": w.name, "framework": label, "batch": w.batch * k, **timeit(run, jax_sync, repeats=repeats)})
    return rows
