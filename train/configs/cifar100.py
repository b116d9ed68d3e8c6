"""CIFAR-100 (TFDS `cifar100:3.0.2`): SmallInception, as the released runs.

Run (on a GPU machine):
    bazel run //train:heldout -- --dataset=cifar100:3.0.2 --subset_ratio=0.7 \
        --runs=0:256 --output_dir=/data/cifar100-inception
The recipe is CIFAR-10's (`train/configs/cifar10.py`; the same statement of
what is known from the release and what is our choice applies), with 100
classes. Expected time (estimated, not measured): about 7 minutes per run on
one modern GPU. `--config=cifar100_small` (2 epochs) is a quick check.
"""

from train.configs import cifar10

CONFIG = cifar10.CONFIG.replace(name="cifar100", dataset="cifar100:3.0.2")

SMALL = CONFIG.replace(name="cifar100_small", epochs=2, warmup_epochs=0.5)
