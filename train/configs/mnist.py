"""MNIST (TFDS `mnist`): the MLP of upstream's JAX MNIST example.

Run:
    bazel run //train:heldout -- --dataset=mnist --subset_ratio=0.7 \
        --runs=0:2000 --output_dir=/tmp/mnist-mlp
Hyperparameters follow upstream's `mnist-example/mnist_infl_mem.py`
(google-research/heldout-influence-estimation): MLP 784-512-256-10, SGD
momentum 0.9, constant step size 0.1, batch 128, 10 epochs, subsets of
floor(0.7 * 60,000) examples, no augmentation (about 98% test accuracy).
Expected time, measured on the project's 2-core CPU with random data of
MNIST's shape (TFDS cannot download here): about 0.4 s per epoch, so about
5 s per run one at a time (10 epochs plus evaluation of 70,000 images).
`--batched_k` does not pay off for this model on a CPU (K=16: about 0.75 s
per run per epoch): its matmuls are already large enough one model at a time.
`--config=mnist_small` (1 epoch) is a quick local check.
"""

from train.configs import base

CONFIG = base.TrainConfig(
    name="mnist",
    dataset="mnist",
    arch="mlp",
    arch_kwargs={"hidden_sizes": (512, 256)},
    epochs=10,
    batch_size=128,
    optimizer="momentum",
    learning_rate=0.1,
    momentum=0.9,
    lr_schedule="constant",
    augment=False,
)

SMALL = CONFIG.replace(name="mnist_small", epochs=1)

CNN = CONFIG.replace(name="mnist_cnn", arch="small_cnn",
                     arch_kwargs={"channels": (32, 64), "hidden": 128},
                     learning_rate=0.05)
