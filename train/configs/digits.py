"""Digits (scikit-learn's bundled 8x8 digits): an MLP, trained in seconds.

Run (one model at a time):
    bazel run //train:heldout -- --dataset=digits --subset_ratio=0.7 \
        --runs=0:64 --output_dir=/tmp/digits-mlp
Measured on the project's 2-core CPU (`//benchmarks:training_benchmark`):
about 0.25 s per run one at a time (64 runs: about 16 s plus 10 s of
start-up); with `--batched_k=64` (K models in one batched computation,
`train/batched.py`) about 0.05 s per run.
`--config=digits_small` (5 epochs) is a smoke test: a few runs in seconds.
`--config=digits_cnn` (SmallCNN, channels (32, 64), hidden 128, learning
rate 0.05; about 98.1% test accuracy): about 0.85 s per run one at a time,
0.45 s per run with `--batched_k=16`.

Hyperparameters (chosen here; no paper trained on digits): MLP with one
hidden layer of 256, SGD momentum 0.9, constant learning rate 0.1, batch 128,
20 epochs, no augmentation: about 96.7% test accuracy at ratio 0.7.
"""

from train.configs import base

CONFIG = base.TrainConfig(
    name="digits",
    dataset="digits",
    arch="mlp",
    arch_kwargs={"hidden_sizes": (256,)},
    epochs=20,
    batch_size=128,
    optimizer="momentum",
    learning_rate=0.1,
    momentum=0.9,
    lr_schedule="constant",
    augment=False,
)

SMALL = CONFIG.replace(name="digits_small", epochs=5)

CNN = CONFIG.replace(name="digits_cnn", arch="small_cnn",
                     arch_kwargs={"channels": (32, 64), "hidden": 128},
                     learning_rate=0.05)
