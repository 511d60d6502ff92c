"""Data parallelism on 4 forced CPU devices: same result as one device (BatchNorm statistics included,
since the model has BatchNorm), and the batch really sharded."""

import os
import subprocess
import sys
import textwrap


def test_four_devices_match_one_device_and_shard_the_batch(tmp_path):
    code = textwrap.dedent(  # raw: the regex below keeps its backslashes
        r"""
        import jax, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec as P
        from cnnjax.train import TrainConfig, fit
        from cnnjax.train.loop import data_mesh
        assert jax.local_device_count() == 4, jax.devices()
        common = dict(model="resnet20", dataset="digits", batch_size=64, steps=3, optimizer="momentum", lr=0.05,
                      model_options={}, checkpoint_every=1000)
        one = fit(TrainConfig(**common, num_devices=1, run_dir=r"TMP/one"), progress=False)
        four = fit(TrainConfig(**common, num_devices=4, run_dir=r"TMP/four"), progress=False)
        # Few steps: the sharded reductions reorder float sums (~1e-6), which early training would amplify.
        for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(four.params)):
            a, b = np.asarray(a), np.asarray(b)
            assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max(), (np.abs(a - b).max(), np.abs(a).max())
        assert len(jax.tree.leaves(four.params)[0].sharding.device_set) == 4  # parameters replicated on all 4
        # the step's batch is split 4 ways: look at the compiled program's sharding of the gathered batch
        from cnnjax.train.step import make_train_step, init_state
        from cnnjax.train.optim import make_optimizer
        from cnnjax import models
        import jax.numpy as jnp
        mesh = data_mesh(4)
        cfg = TrainConfig(model="simple_cnn")
        tx = make_optimizer(cfg, 30)
        tdef, _, state = init_state(models.create("simple_cnn", in_channels=1, num_classes=10), tx, 0)
        step = make_train_step(tdef, tx, 64, batch_sharding=NamedSharding(mesh, P("data")))
        x, y = jnp.zeros((256, 28, 28, 1)), jnp.zeros((256,), jnp.int32)
        hlo = step.lower(state, x, y, jnp.arange(256), 0).as_text()  # the sharding constraint, before partitioning
        import re
        assert 'sdy.mesh @mesh = <["data"=4]>' in hlo, "no 4-device mesh in the step"
        assert re.search(r'sharding_constraint %\d+ <@mesh, \[\{"data"\}, \{\}, \{\}, \{\}\]> : tensor<64x28x28x1', hlo), "batch not sharded"
        print("OK")
        """
    ).replace("TMP", str(tmp_path))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "OK" in out.stdout
