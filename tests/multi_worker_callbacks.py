"""Test helper: trains one small model and saves what its callbacks saw.

    TF_CONFIG=... python tests/multi_worker_callbacks.py --output=OUT.npz

Run as every worker of a cluster (or as one process), it trains the digits
MLP on 97 examples with batch 32 (the last batch of each epoch holds one
example: with two workers, worker 1's replica gets none) and saves, from
this process's callback, every step's number, example ids, per-example
losses and correctness, and the final weights. `record(output)` does the
same in-process.
"""

from absl import app
from absl import flags
import numpy as np

from train import loop

_OUTPUT = flags.DEFINE_string("output", None, "Where to write the npz.")


class Recorder(loop.Callback):

  def __init__(self):
    self.batches = []

  def on_batch_end(self, epoch, step, index, per_example_loss, correct):
    self.batches.append((step, index, per_example_loss, correct))


def record(output, strategy):
  """Trains under `strategy` and writes what the callback saw to `output`."""
  # Imported here: the multi-worker strategy must exist before any TF op.
  from heldout.data import digits  # pylint: disable=g-import-not-at-top
  from heldout.models import registry  # pylint: disable=g-import-not-at-top
  from train.configs import base  # pylint: disable=g-import-not-at-top
  data = digits.load_digits()
  config = base.TrainConfig(
      name="callbacks", dataset="digits", arch="mlp", epochs=2, batch_size=32,
      learning_rate=0.1, momentum=0.9, arch_kwargs={"hidden_sizes": (16,)})
  trainer = loop.Trainer(
      lambda: registry.build_model("mlp", 10, hidden_sizes=(16,)),
      data.image_shape, config, strategy=strategy)
  trainer.reset(3)
  recorder = Recorder()
  trainer.fit(data.train, np.arange(0, 97 * 7, 7), seed=3,
              callbacks=[recorder])
  b = recorder.batches
  np.savez(output, step=np.array([x[0] for x in b]),
           size=np.array([len(x[1]) for x in b]),
           index=np.concatenate([x[1] for x in b]),
           loss=np.concatenate([x[2] for x in b]),
           correct=np.concatenate([x[3] for x in b]),
           weights=np.concatenate([v.numpy().ravel()
                                   for v in trainer.model.trainable_variables]),
           replicas=strategy.num_replicas_in_sync)


def main(argv):
  del argv
  record(_OUTPUT.value, loop.make_strategy())


if __name__ == "__main__":
  flags.mark_flag_as_required("output")
  app.run(main)
