"""Test helpers shared by the model and checkpoint tests (not a public API)."""

import json
import os

import tensorflow as tf

TESTDATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            os.pardir, "testdata")
GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def released_variables(experiment):
  """{key: shape tuple} of a released experiment, per the spec's json."""
  with open(os.path.join(TESTDATA_DIR, "checkpoint_variables.json")) as f:
    listing = json.load(f)[experiment]
  return {key: tuple(shape) for key, shape in listing.items()}


def write_checkpoint(prefix, model, epoch=0, global_step=0, **extra):
  """Writes `model` as the released runs did; returns the prefix."""
  counters = dict(
      epoch=tf.Variable(epoch, dtype=tf.int64, trainable=False),
      global_step=tf.Variable(global_step, dtype=tf.int64, trainable=False))
  return tf.train.Checkpoint(model=model, **counters, **extra).write(prefix)


def listed_variables(prefix):
  """{key: shape tuple} of a checkpoint, without the object graph entry."""
  return {key: tuple(shape) for key, shape in tf.train.list_variables(prefix)
          if key != GRAPH_KEY}


def train_step(model, images, labels, learning_rate=0.01):
  """One SGD step with `is_training=True`, so weights and BN stats move."""
  with tf.GradientTape() as tape:
    logits = model(images, is_training=True)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))
  grads = tape.gradient(loss, model.trainable_variables)
  for var, grad in zip(model.trainable_variables, grads):
    var.assign_sub(learning_rate * grad)
  return loss
