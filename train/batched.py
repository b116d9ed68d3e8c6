"""K heldout runs at once: small models trained in one batched computation.

For the small models (`mlp`, `small_cnn`) one update of one model is far too
little work to keep even a 2-core CPU busy, so K runs are trained together:
their weights are stacked ([K, ...] per variable), each step gathers for
every model a batch of its own examples ([K, B, ...], each model with its own
subset and its own order), and one compiled epoch function runs batched
matmuls (`tf.matmul` on [K, B, D] x [K, D, H]) and per-model convolutions
(one grouped `conv2d` where the CPU's kernels differentiate it, else one
batched matmul over image patches: `grouped_conv_has_gradients`). Each model's loss is its own batch mean, so the
gradient of their sum is, model by model, exactly that model's gradient.

Everything about run r is what the single-model loop (`train/loop.py`) does
for run r: the same initial weights (the module built right after
`tf.random.set_seed(subsets.init_seed(run_seed))`), the same subset, the
same epoch orders, the same update rule and schedule (`train/optim.py`).
The only differences are floating-point summation orders.

Every finished model is sliced out of the stack into the ordinary
single-model module (`heldout.models.mlp.MLP` / `SmallCNN`, variables at the
paths their docstrings list) and saved exactly as a single run: the
checkpoint `tf.train.Checkpoint(model, epoch, global_step)` and
`aux_arrays.npz`, published as `train.heldout_training.publish_run` does
(`train/heldout_training.py`). Resumable at run granularity: finished runs are
not published again; the groups are fixed by the run ids asked, so a
restarted job trains each unfinished run in the same group of K as the
uninterrupted job would (finished members again too, unpublished), and its
checkpoints are bitwise those of an uninterrupted job.
Each epoch also returns every training step's own predictions (before its
update), for per-example scores (`fit`'s `epoch_end_fn`; `train/scoring.py`
counts forgetting events from them). Not supported here: augmentation (use
the single-model loop). It pays off where one model's step is too small to keep
the machine busy: on the project's 2-core CPU, digits' MLP runs about 5x
faster than one at a time and digits' SmallCNN about 1.9x (K=16, grouped
conv2d on an AMX machine; `//benchmarks:training_benchmark`), while MNIST's 784-512-256 MLP is already
efficient one at a time and gains nothing.
"""

import concurrent.futures
import functools
import math
import time
from typing import Callable, List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from heldout import atomic
from heldout.models import registry as model_registry
from heldout.readers import aux_arrays as aux_lib
from heldout.readers import layout
from train import claims as claims_lib
from train import heldout_training as heldout
from train import optim
from train import subsets

SUPPORTED_ARCHS = ("mlp", "small_cnn")


def _resolve(module, path):
  obj = module
  for part in path.split("/"):
    obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
  return obj


def parameter_paths(arch, module) -> List[str]:
  """Paths (as in the checkpoint, relative to `model/`) of the module's weights.

  Args:
    arch: "mlp" or "small_cnn".
    module: a built `MLP` or `SmallCNN`.

  Returns:
    e.g. ["_layers/0/w", "_layers/0/b", "_layers/1/w", "_layers/1/b"].
  """
  if arch == "mlp":
    n = len(module._layers)  # pylint: disable=protected-access
    return [f"_layers/{i}/{v}" for i in range(n) for v in ("w", "b")]
  if arch == "small_cnn":
    n = len(module._convs)  # pylint: disable=protected-access
    return ([f"_convs/{i}/{v}" for i in range(n) for v in ("w", "b")] +
            [f"_hidden/{v}" for v in ("w", "b")] +
            [f"_logits/{v}" for v in ("w", "b")])
  raise ValueError("`arch` must be one of {}, got {!r}".format(
      list(SUPPORTED_ARCHS), arch))


def _grouped_conv(net, w):
  """K convolutions (3x3 SAME, stride 1) as one grouped convolution.

  Args:
    net: [K, B, H, W, C] inputs, model k's in `net[k]`.
    w: [K, kh, kw, C, O] filters.

  Returns:
    [K, B, H, W, O]: `conv2d(net[k], w[k])` for each k. The K models' channels
    sit side by side ([B, H, W, K * C]) and `conv2d` with K groups keeps
    them apart; faster on a CPU than K separate or vectorized convolutions,
    where the kernels can differentiate it (`grouped_conv_has_gradients`).
  """
  k, b = tf.shape(net)[0], tf.shape(net)[1]
  height, width = tf.shape(net)[2], tf.shape(net)[3]
  c, o = w.shape[-2], w.shape[-1]
  kh, kw = w.shape[1], w.shape[2]
  grouped_in = tf.reshape(tf.transpose(net, [1, 2, 3, 0, 4]),
                          [b, height, width, -1])
  grouped_w = tf.reshape(tf.transpose(w, [1, 2, 3, 0, 4]), [kh, kw, c, -1])
  out = tf.nn.conv2d(grouped_in, grouped_w, strides=1, padding="SAME")
  out = tf.reshape(out, [b, height, width, k, o])
  return tf.transpose(out, [3, 0, 1, 2, 4])


def _patch_conv(net, w):
  """K convolutions (SAME, stride 1) as one batched matmul over image patches.

  The same result as `_grouped_conv` from ops that every CPU kernel set
  differentiates: the kh * kw shifted copies of the SAME-padded input,
  side by side in (dy, dx, c) order, times the filters reshaped to
  [K, kh * kw * C, O].

  Args:
    net: [K, B, H, W, C] inputs.
    w: [K, kh, kw, C, O] filters.

  Returns:
    [K, B, H, W, O].
  """
  height, width = tf.shape(net)[2], tf.shape(net)[3]
  kh, kw = w.shape[1], w.shape[2]
  # SAME padding for stride 1, as conv2d: the extra row/column goes last.
  padded = tf.pad(net, [[0, 0], [0, 0], [(kh - 1) // 2, kh // 2],
                        [(kw - 1) // 2, kw // 2], [0, 0]])
  patches = tf.concat([padded[:, :, dy:dy + height, dx:dx + width, :]
                       for dy in range(kh) for dx in range(kw)], axis=-1)
  k, c, o = tf.shape(w)[0], w.shape[3], w.shape[4]
  return tf.einsum("kbhwp,kpo->kbhwo", patches,
                   tf.reshape(w, [k, kh * kw * c, o]))


@functools.lru_cache(maxsize=None)
def grouped_conv_has_gradients() -> bool:
  """Whether this machine's conv2d kernels differentiate grouped convolutions.

  TensorFlow's oneDNN kernels (on by default on CPUs with AVX-512) compute
  the gradients of a grouped `conv2d`; its Eigen kernels (CPUs without
  AVX-512, e.g. AVX2-only AMD EPYC) run the forward pass but refuse the
  gradients ("Gradients for grouped convolutions are not supported on CPU").
  So the path is chosen by trying: a tiny grouped convolution's gradients,
  checked against `_patch_conv`'s. The check runs in a thread of its own,
  eagerly and outside any tape or `tf.function` being traced by the caller.
  """
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    works = pool.submit(_grouped_conv_gradients_match).result()
  logging.info("batched convolutions: %s", "grouped conv2d" if works else
               "patches x filters matmul (grouped conv2d gradients "
               "unsupported by this machine's kernels)")
  return works


def _grouped_conv_gradients_match():
  rng = np.random.default_rng(0)
  net = tf.constant(rng.standard_normal([2, 2, 5, 5, 3]), tf.float32)
  w = tf.constant(rng.standard_normal([2, 3, 3, 3, 4]), tf.float32)
  grads = []
  for conv in (_grouped_conv, _patch_conv):
    try:
      with tf.GradientTape() as tape:
        tape.watch([net, w])
        loss = tf.reduce_sum(tf.square(conv(net, w)))
      grads.append([g.numpy() for g in tape.gradient(loss, [net, w])])
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
      return False
  # Gradients of magnitude ~50 from sums of ~30 float32 products each:
  # agreeing kernels differ by rounding (~1e-6 relative), a wrong grouping
  # by O(1).
  return all(np.allclose(a, b, rtol=0, atol=1e-4 * np.abs(b).max())
             for a, b in zip(*grads))


def _conv(net, w):
  if grouped_conv_has_gradients():
    return _grouped_conv(net, w)
  return _patch_conv(net, w)


def batched_forward(arch, params, images):
  """Logits of K stacked models, each on its own batch.

  Args:
    arch: "mlp" or "small_cnn".
    params: stacked weights in `parameter_paths` order, each [K, ...].
    images: [K, B, height, width, channels] float32.

  Returns:
    logits: [K, B, num_classes] float32.
  """
  k = tf.shape(images)[0]
  b = tf.shape(images)[1]
  if arch == "mlp":
    net = tf.reshape(images, [k, b, -1])
    num_layers = len(params) // 2
    for i in range(num_layers):
      if i:
        net = tf.nn.relu(net)
      net = tf.matmul(net, params[2 * i]) + params[2 * i + 1][:, None, :]
    return net
  if arch == "small_cnn":
    num_convs = (len(params) - 4) // 2
    net = images
    for i in range(num_convs):
      w, bias = params[2 * i], params[2 * i + 1]
      net = tf.nn.relu(_conv(net, w) + bias[:, None, None, None, :])
      shape = tf.shape(net)
      pooled = tf.nn.max_pool2d(
          tf.reshape(net, tf.concat([[k * b], shape[2:]], 0)), ksize=2,
          strides=2, padding="SAME")
      net = tf.reshape(pooled, tf.concat([[k, b], tf.shape(pooled)[1:]], 0))
    hidden_w, hidden_b, logits_w, logits_b = params[-4:]
    net = tf.reshape(net, [k, b, -1])
    net = tf.nn.relu(tf.matmul(net, hidden_w) + hidden_b[:, None, :])
    return tf.matmul(net, logits_w) + logits_b[:, None, :]
  raise ValueError("`arch` must be one of {}, got {!r}".format(
      list(SUPPORTED_ARCHS), arch))


def train_flops_per_example(arch, module, image_shape) -> float:
  """Forward FLOPs of one example (2 m n k per matmul/conv); training ~ 3x."""
  params = {p: _resolve(module, p) for p in parameter_paths(arch, module)}
  flops = 0.0
  if arch == "mlp":
    for path, var in params.items():
      if path.endswith("/w"):
        flops += 2.0 * var.shape[0] * var.shape[1]
    return flops
  height, width = image_shape[0], image_shape[1]
  for path, var in params.items():
    if path.startswith("_convs/") and path.endswith("/w"):
      kh, kw, cin, cout = var.shape
      flops += 2.0 * height * width * kh * kw * cin * cout
      height, width = math.ceil(height / 2), math.ceil(width / 2)
    elif path.endswith("/w"):
      flops += 2.0 * var.shape[0] * var.shape[1]
  return flops


def supports(config) -> bool:
  """Whether batched training can train `config` (its arch, no augmentation)."""
  return config.arch in SUPPORTED_ARCHS and not config.augment


def check_batched_k(k: int, config):
  """Raises ValueError unless `k` (0: off) suits `config` for batched training."""
  if k < 0:
    raise ValueError("`batched_k` must be >= 0, got {}".format(k))
  if k and config.arch not in SUPPORTED_ARCHS:
    raise ValueError("`batched_k` needs arch in {}, got {!r}".format(
        list(SUPPORTED_ARCHS), config.arch))
  if k and config.augment:
    raise ValueError("`batched_k`: config {} asks for augmentation, which "
                     "batched training does not do; drop --batched_k".format(
                         config.name))


class BatchedTrainer:
  """K models of one small architecture trained together."""

  def __init__(self, arch, num_classes, image_shape, config, k,
               arch_kwargs=None):
    """Builds the stacked variables and the compiled epoch function.

    Args:
      arch: "mlp" or "small_cnn".
      num_classes: number of classes.
      image_shape: (height, width, channels).
      config: `TrainConfig` (its arch_kwargs are used if `arch_kwargs` is
        None).
      k: number of models trained at once.
      arch_kwargs: constructor arguments of the single-model module.

    Raises:
      ValueError: for another arch, k < 1, or a config with augmentation.
    """
    if arch not in SUPPORTED_ARCHS:
      raise ValueError("`arch` must be one of {}, got {!r}".format(
          list(SUPPORTED_ARCHS), arch))
    if k < 1:
      raise ValueError("`k` must be positive, got {}".format(k))
    if config.augment:
      raise ValueError("`config` asks for augmentation, which batched "
                       "training does not do; use the single-model loop")
    self.arch = arch
    self.num_classes = int(num_classes)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.config = config
    self.k = int(k)
    self.arch_kwargs = dict(config.arch_kwargs if arch_kwargs is None
                            else arch_kwargs)
    self.template = self.new_module()
    self.paths = parameter_paths(arch, self.template)
    shapes = [_resolve(self.template, p).shape for p in self.paths]
    self.params = [tf.Variable(tf.zeros([self.k] + s.as_list()),
                               name=p.replace("/", "_"))
                   for p, s in zip(self.paths, shapes)]
    self.accumulators = [tf.Variable(tf.zeros_like(p), trainable=False)
                         for p in self.params]
    self.decay_mask = [p.endswith("/w") for p in self.paths]
    self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
    self._epoch_fns = {}
    self._eval_fn = tf.function(
        lambda images: tf.argmax(batched_forward(self.arch, self.params,
                                                 images), axis=-1),
        reduce_retracing=True)

  def new_module(self):
    """A built single-model module (random weights)."""
    module = model_registry.build_model(self.arch, self.num_classes,
                                        **self.arch_kwargs)
    module(tf.zeros((1,) + self.image_shape), is_training=False)
    return module

  # -- initial weights and export ------------------------------------------

  def initial_values(self, seed) -> List[np.ndarray]:
    """The initial weights of run seed `seed`, as `train.loop.Trainer.reset`.

    `Trainer.reset` builds a fresh module right after
    `tf.random.set_seed(subsets.init_seed(seed))`; building one module per run
    is slow for K runs, so this replays the same initializer calls (each
    layer's `w_init` then `b_init`, in creation order, on the template
    module) after the same `set_seed`, which draws the same values
    (`initial_values_reference` is the slow path; a test compares the two).
    """
    tf.random.set_seed(subsets.init_seed(seed))
    values = []
    for path in self.paths:
      layer_path, name = path.rsplit("/", 1)
      layer = _resolve(self.template, layer_path)
      init = layer.w_init if name == "w" else layer.b_init
      values.append(init(getattr(layer, name).shape, tf.float32).numpy())
    return values

  def initial_values_reference(self, seed) -> List[np.ndarray]:
    """`initial_values` the slow way: build the module after `set_seed`."""
    tf.random.set_seed(subsets.init_seed(seed))
    module = self.new_module()
    return [_resolve(module, p).numpy() for p in self.paths]

  def reset(self, seeds: Sequence[int]):
    """Initial weights of the K runs with `seeds`; zero optimizer state."""
    if len(seeds) != self.k:
      raise ValueError("`seeds` must have k={} entries, got {}".format(
          self.k, len(seeds)))
    per_run = [self.initial_values(s) for s in seeds]
    for i, var in enumerate(self.params):
      var.assign(np.stack([values[i] for values in per_run]))
    for a in self.accumulators:
      a.assign(tf.zeros_like(a))
    self.global_step.assign(0)

  def export(self, index, module=None):
    """Model `index` of the stack as a single-model module.

    Args:
      index: which of the K models.
      module: a built module to assign into (a new one if None).

    Returns:
      The module, holding model `index`'s weights.
    """
    module = module or self.new_module()
    for path, var in zip(self.paths, self.params):
      _resolve(module, path).assign(var[index])
    return module

  # -- training and evaluation ----------------------------------------------

  def _epoch_fn(self, images, labels, n, steps_per_epoch):
    key = (id(images), n)
    if key in self._epoch_fns:
      return self._epoch_fns[key]
    config = self.config
    batch_size = config.batch_size

    def train_epoch(order):
      total = tf.constant(0.0)
      correct = tf.TensorArray(tf.bool, size=steps_per_epoch,
                               infer_shape=False)
      for s in tf.range(steps_per_epoch):
        pos = order[:, s * batch_size:(s + 1) * batch_size]  # [K, b]
        x = tf.gather(images, pos)
        y = tf.gather(labels, pos)
        lr = optim.learning_rate(self.global_step, steps_per_epoch, config)
        with tf.GradientTape() as tape:
          logits = batched_forward(self.arch, self.params, x)
          per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
              labels=y, logits=logits)
          loss = tf.reduce_sum(tf.reduce_mean(per_example, axis=1))
        grads = tape.gradient(loss, self.params)
        optim.apply_updates(self.params, self.accumulators, grads, lr, config,
                            self.decay_mask)
        self.global_step.assign_add(1)
        total += loss
        # [b, K]: the step's own predictions, before its update.
        correct = correct.write(s, tf.transpose(tf.equal(
            tf.argmax(logits, axis=-1, output_type=y.dtype), y)))
      return (total / tf.cast(steps_per_epoch, tf.float32) / self.k,
              tf.transpose(correct.concat()))

    fn = tf.function(train_epoch, input_signature=[
        tf.TensorSpec([self.k, n], tf.int32)])
    self._epoch_fns = {key: fn}  # keep one: the images tensor of this split
    return fn

  def fit(self, split, subsets_ids: Sequence[np.ndarray], seeds: Sequence[int],
          epochs: Optional[int] = None,
          epoch_end_fn: Optional[Callable[[int, np.ndarray, np.ndarray],
                                          None]] = None):
    """Trains the K models from scratch on their subsets.

    Args:
      split: the training `SplitData`.
      subsets_ids: K arrays of training ids, all of one length.
      seeds: K run seeds (`subsets.run_seed`).
      epochs: the config's if None.
      epoch_end_fn: called after each epoch as `epoch_end_fn(epoch,
        positions, correct)`: the 0-based epoch; [K, n] int the positions in
        `split` of each model's examples in the order it trained on them;
        [K, n] bool whether that training step predicted each one right
        (from its logits before the update, as `train.loop.Trainer` hands
        its callbacks).

    Returns:
      [epochs] mean training loss per epoch (over the K models).
    """
    epochs = self.config.epochs if epochs is None else int(epochs)
    sizes = {len(s) for s in subsets_ids}
    if len(subsets_ids) != self.k or len(sizes) != 1:
      raise ValueError("`subsets_ids` must be k={} arrays of one length, got "
                       "{} of lengths {}".format(self.k, len(subsets_ids),
                                                 sorted(sizes)))
    n = sizes.pop()
    positions = [split.positions_of(np.sort(ids)) for ids in subsets_ids]
    steps_per_epoch = math.ceil(n / self.config.batch_size)
    if getattr(self, "_split", None) is not split:
      self._split = split  # held, so the cache below cannot outlive it
      self._split_images = tf.constant(split.images)
      self._split_labels = tf.constant(split.labels)
    fn = self._epoch_fn(self._split_images, self._split_labels, n,
                        steps_per_epoch)
    self.reset(seeds)
    losses = []
    for epoch in range(epochs):
      order = np.stack([pos[subsets.epoch_order(seed, epoch, n)]
                        for pos, seed in zip(positions, seeds)]).astype(
                            np.int32)
      loss, correct = fn(tf.constant(order))
      losses.append(float(loss))
      if epoch_end_fn is not None:
        epoch_end_fn(epoch, order, correct.numpy())
    self.steps_per_epoch = steps_per_epoch
    return losses

  def predict(self, split, batch_size: Optional[int] = None) -> np.ndarray:
    """Predicted classes of all K models on every example of `split`.

    Returns:
      [K, n] int64, column j for the example at position j.
    """
    batch_size = batch_size or self.config.eval_batch_size
    out = []
    for start in range(0, len(split), batch_size):
      x = split.images[start:start + batch_size]
      x = tf.broadcast_to(tf.constant(x)[None], [self.k] + list(x.shape))
      out.append(self._eval_fn(x).numpy())
    return np.concatenate(out, axis=1)


def balanced_groups(run_ids, k):
  """Splits runs into ceil(P / k) groups of nearly equal size <= k."""
  if not run_ids:
    return [], 0
  num_groups = math.ceil(len(run_ids) / k)
  size = math.ceil(len(run_ids) / num_groups)
  return [run_ids[i:i + size] for i in range(0, len(run_ids), size)], size


def train_heldout_batched(dataset, arch, subset_ratio, run_ids, output_dir,
                          config, k=64, progress=True, claim_options=None,
                          use_claims=True) -> List[heldout.RunResult]:
  """Heldout training of `run_ids`, K models at a time, in the released layout.

  Writes exactly what `train.heldout.train_heldout` writes for the same runs
  (same subsets, initial weights, orders and update rule; checkpoints that
  restore into the single-model module; aux_arrays.npz), and shares its
  resumability and argument check: both can fill one experiment folder.

  Args:
    dataset: `heldout.data.Dataset`.
    arch: "mlp" or "small_cnn" (replaces `config.arch`, with default
      constructor arguments, if different).
    subset_ratio: fraction of the training set per run.
    run_ids: run ids to train.
    output_dir: experiment folder (a local path or a `tf.io.gfile` URL).
    config: `TrainConfig` (no augmentation).
    k: models per batched computation (groups are balanced, so the last one
      is not mostly padding, and fixed by `run_ids`: see the comment below).
    progress: tqdm bar over runs.
    claim_options: arguments of `train.claims.RunClaims`: each pending run
      is claimed before its group trains, so workers with overlapping
      ranges share the runs (a run another worker holds is `ELSEWHERE`).
    use_claims: False to publish every pending run without claiming it
      (give each worker disjoint runs then).

  Returns:
    A `RunResult` per run id, in order.
  """
  if arch != config.arch:
    config = config.replace(arch=arch, arch_kwargs={})
  layout.ratio_dirname(subset_ratio)
  heldout.check_or_write_arguments(output_dir,
                                   heldout.job_arguments(dataset, config))
  run_ids = [int(r) for r in run_ids]
  pending = heldout.pending_runs(output_dir, subset_ratio, run_ids)
  # Groups fixed by the runs asked, not by those pending: a restarted job
  # trains each run in the same group of the same K as an uninterrupted one
  # (every run of a group with a pending run is trained again, only the
  # pending ones are published), so its checkpoints are bitwise the same.
  all_groups, group_size = balanced_groups(run_ids, k)
  pending_set = set(pending)
  groups = [g for g in all_groups if pending_set.intersection(g)]
  logging.info("batched heldout training %s/%s ratio %s: %d runs asked, %d to "
               "train in %d of %d groups of <= %d", dataset.name, arch,
               layout.ratio_dirname(subset_ratio), len(run_ids), len(pending),
               len(groups), len(all_groups), group_size)
  results = {}
  # One worker's claims: of the leftovers it clears and the runs it trains.
  run_claims = claims_lib.for_job(output_dir, subset_ratio, use_claims,
                                  claim_options)
  try:
    heldout.remove_leftovers(output_dir, subset_ratio,
                             [r for r in run_ids if r not in pending_set],
                             run_claims)
    if groups:
      trainer = BatchedTrainer(arch, dataset.num_classes, dataset.image_shape,
                               config, group_size)
      bar = heldout._progress_bar(  # pylint: disable=protected-access
          len(pending), "ratio {} (K={})".format(
              layout.ratio_dirname(subset_ratio), group_size), progress)
      export_module = trainer.new_module()
      epoch_var = tf.Variable(0, dtype=tf.int64, name="epoch")
      step_var = tf.Variable(0, dtype=tf.int64, name="global_step")
      checkpoint = tf.train.Checkpoint(model=export_module, epoch=epoch_var,
                                       global_step=step_var)
      # One compiled writer for every run (an eager write rebuilds its ops).
      compiled_write = tf.function(checkpoint.write)
      write_fn = lambda prefix: compiled_write(tf.constant(prefix))
      n_train, n_test = len(dataset.train), len(dataset.test)
      started, done = time.time(), 0
      try:
        for group in groups:
          group_started = time.time()
          # This worker publishes the pending runs of the group it claims; the
          # group is trained whole (fixed groups: bitwise results).
          mine = {r for r in group if r in pending_set and
                  not heldout.is_complete_run(
                      layout.run_dir(output_dir, subset_ratio, r)) and
                  run_claims.try_claim(r)}
          for r in pending_set.intersection(group) - mine:
            results[r] = heldout.RunResult(
                r, heldout.ELSEWHERE,
                layout.run_dir(output_dir, subset_ratio, r))
          if not mine:
            if bar is not None:
              bar.update(len(pending_set.intersection(group)))
            continue
          # Pad a short group with copies of its last run (results discarded).
          padded = group + [group[-1]] * (group_size - len(group))
          seeds = [subsets.run_seed(subset_ratio, r) for r in padded]
          subset_ids = [subsets.draw_subset(n_train, subset_ratio, r)
                        for r in padded]
          trainer.fit(dataset.train, subset_ids, seeds)
          pred_train = trainer.predict(dataset.train)
          pred_test = trainer.predict(dataset.test)
          correct_train = pred_train == dataset.train.labels[None, :]
          correct_test = pred_test == dataset.test.labels[None, :]
          epoch_var.assign(config.epochs)
          step_var.assign(config.epochs * trainer.steps_per_epoch)
          for i, run_id in enumerate(group):
            if run_id not in mine:
              continue  # published before, or another worker's: not ours
            arrays = heldout.run_aux_arrays(
                n_train, subset_ids[i], dataset.train.index, correct_train[i],
                dataset.test.index, correct_test[i])
            trainer.export(i, export_module)
            tmp = heldout.tmp_run_dir(output_dir, subset_ratio, run_id)
            final = layout.run_dir(output_dir, subset_ratio, run_id)
            with atomic.named_write_errors(tmp, "run {}".format(run_id)):
              heldout.publish_run(tmp, final, checkpoint, config.epochs, arrays,
                                  n_train, n_test, write_fn=write_fn)
            results[run_id] = heldout.RunResult(
                run_id, "trained", final,
                (time.time() - group_started) / len(group),
                heldout.run_accuracy(arrays))
            run_claims.release(run_id)
          published = len(pending_set.intersection(group))
          done += published
          elapsed = time.time() - started
          logging.info("runs %d..%d trained (%d/%d, %.2fs per run, mean test "
                       "accuracy %.4f, ETA %.0fs)", group[0], group[-1], done,
                       len(pending), elapsed / done,
                       float(np.mean(correct_test[:len(group)])),
                       elapsed / done * (len(pending) - done))
          if bar is not None:
            bar.update(published)
      finally:
        if bar is not None:
          bar.close()
  finally:
    run_claims.release_all()
  out = []
  for run_id in run_ids:
    out.append(results.get(run_id) or heldout.RunResult(
        run_id, "skipped", layout.run_dir(output_dir, subset_ratio, run_id)))
  return out
