"""A few dense layers in plain JAX trained for a few steps on a dl-driver dataset, measured.

    python examples/jax_dense.py /tmp/data-jax out/jax
"""
from __future__ import annotations

import sys

from common import ensure_dataset, tiny_workload
from dldriver.frameworks.measure import Measurement
from dldriver.jax import DlioJaxDataset


def main(data_folder: str, output: str) -> dict:
    import jax
    import jax.numpy as jnp

    doc = tiny_workload(data_folder, "npz", "jax")
    ensure_dataset(doc)
    data = DlioJaxDataset.from_config(doc)
    key = jax.random.PRNGKey(0)
    params = [jax.random.normal(key, (256, 16)) * 0.01, jnp.zeros(16), jax.random.normal(key, (16, 1)) * 0.1]

    def loss_fn(p, x):
        h = jax.nn.relu(x @ p[0] + p[1])
        return jnp.mean((h @ p[2] - x.mean(axis=1, keepdims=True)) ** 2)

    @jax.jit
    def step(p, batch):
        x = batch.reshape(batch.shape[0], -1).astype(jnp.float32) / 255
        loss, grads = jax.value_and_grad(loss_fn)(p, x)
        return [w - 0.1 * g for w, g in zip(p, grads)], loss

    with Measurement(data, output) as run:
        for epoch in (1, 2):
            for batch in run.epoch(epoch):
                params, loss = step(params, batch)
                loss.block_until_ready()  # the compute ends when the device is done
    print(f"loss {float(loss):.4f}; AU {run.summary['metric']['train_au_mean_percentage']:.1f} %; {output}")
    return run.summary


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
