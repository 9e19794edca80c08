"""A Keras model trained for a few steps on a dl-driver tfrecord dataset, measured as a run folder.

    python examples/tensorflow_keras.py /tmp/data-tf out/tf
"""
from __future__ import annotations

import sys

from common import ensure_dataset, tiny_workload
from dldriver.frameworks.measure import Measurement
from dldriver.tensorflow import DlioTensorFlowDataset


def main(data_folder: str, output: str) -> dict:
    import tensorflow as tf

    doc = tiny_workload(data_folder, "tfrecord", "tensorflow")
    ensure_dataset(doc)
    data = DlioTensorFlowDataset.from_config(doc)
    model = tf.keras.Sequential([tf.keras.Input((16, 16)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with Measurement(data, output) as run:
        for epoch in (1, 2):
            for batch in run.epoch(epoch):
                x = tf.cast(batch, tf.float32) / 255
                loss = model.train_on_batch(x, tf.reduce_mean(x, axis=[1, 2]))
    print(f"loss {float(loss):.4f}; AU {run.summary['metric']['train_au_mean_percentage']:.1f} %; {output}")
    return run.summary


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
