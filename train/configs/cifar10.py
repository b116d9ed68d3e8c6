"""CIFAR-10 (TFDS `cifar10:3.0.2`): SmallInception, as the released runs.

Run (on a GPU machine; several GPUs are used through
`snt.distribute.Replicator`):
    bazel run //train:heldout -- --dataset=cifar10:3.0.2 --subset_ratio=0.7 \
        --runs=0:256 --output_dir=/data/cifar10-inception
Split across 4 machines: add `--num_workers=4 --worker_index=I` on machine I.

What is known from the release: architecture SmallInception (see
`heldout.models.inception`), inputs pixel / 255, training augmentation
zero-pad 4 + random 32x32 crop + random flip, evaluation batches of 200, the
checkpoint of the final epoch. The optimizer details of the papers' appendix
could not be retrieved here, so these are our choice, standard for this
network: SGD momentum 0.9, batch 128, peak learning rate 0.1 with a 2-epoch
linear warmup and linear decay to 0, weight decay 5e-4 on conv/linear
weights, 40 epochs.
Expected time (estimated, not measured): roughly 10 s per epoch of 35,000
images on one modern GPU, so about 7 minutes per run; far too slow for a CPU.
`--config=cifar10_small` (2 epochs) checks the pipeline end to end.
"""

from train.configs import base

CONFIG = base.TrainConfig(
    name="cifar10",
    dataset="cifar10:3.0.2",
    arch="small_inception",
    epochs=40,
    batch_size=128,
    optimizer="momentum",
    learning_rate=0.1,
    momentum=0.9,
    lr_schedule="linear",
    warmup_epochs=2.0,
    weight_decay=5e-4,
    augment=True,
)

SMALL = CONFIG.replace(name="cifar10_small", epochs=2, warmup_epochs=0.5)
