r"""SAMIS's recipe (Agiollo, Kim, Khanna, KDD 2024): paired SGD and SAM runs.

The paper trains, for each of 10 folds and 10 seeds, an SGD and a SAM (rho
0.05) model for 160 epochs on the other 9 folds; its README's command: batch
128, learning rate 0.1, `--lr_sched='step'`, augmentation, ResNet-50 on
CIFAR-100. The step milestones, momentum and weight decay were not read from
their code here; ours are the usual 160-epoch recipe: SGD momentum 0.9,
weight decay 5e-4, the rate x0.1 at epochs 80 and 120 (`lr_schedule="step"`),
`cifar_resnet50` (the CIFAR ResNet-50: 3x3 stem, no max-pool):

    bazel run //train:samis -- --dataset=cifar100:3.0.2 --folds=10 \
        --seeds=0:10 --output=/data/cifar100-samis.npz
(CIFAR-10: `--dataset=cifar10:3.0.2`; the config follows the dataset, or
`--config=cifar10_samis`.) Add `--num_workers=W --worker_index=I` on machine
I to share the 100 pairs. The premature variant (whole training set, 20
epochs, constant rate): add `--premature` (`--epochs` overrides the 20).

Expected time (estimated, not measured): 2 x 10 folds x 10 seeds = 200 runs
of 160 epochs of 45,000 images, SAM runs at about twice the SGD step; on one
modern GPU a ResNet-50 CIFAR epoch takes roughly 30 s, so about 80 minutes
per SGD run and 160 per SAM run: about 400 GPU-hours for all of it, or 40
per seed. Far too slow for a CPU; the premature variant costs 20 / 160 of one
fold's pair per seed (about 1.2 GPU-hours per seed).

`--config=digits_samis` (the default on digits) scales the recipe to digits:
MLP 256, 20 epochs, x0.1 at epochs 10 and 15, no augmentation:

    bazel run //train:samis -- --dataset=digits --folds=10 --seeds=0:10 \
        --output=/tmp/digits-samis.npz
trains 200 runs of about 1,131 images each: measured on the project's 2-core
CPU (shared with other jobs, start-up included) 287 s; `--premature` (20 runs
on all 1,257) 57 s. `--epochs=2 --folds=2 --seeds=0:2` is a smoke test of a
few seconds of training.
"""

from train.configs import base

CIFAR100 = base.TrainConfig(
    name="cifar100_samis",
    dataset="cifar100:3.0.2",
    arch="cifar_resnet50",
    epochs=160,
    batch_size=128,
    optimizer="momentum",
    learning_rate=0.1,
    momentum=0.9,
    lr_schedule="step",
    lr_boundaries_epochs=(80, 120),
    lr_decay=0.1,
    weight_decay=5e-4,
    augment=True,
)

CIFAR10 = CIFAR100.replace(name="cifar10_samis", dataset="cifar10:3.0.2")

DIGITS = CIFAR100.replace(
    name="digits_samis", dataset="digits", arch="mlp",
    arch_kwargs={"hidden_sizes": (256,)}, epochs=20,
    lr_boundaries_epochs=(10, 15), augment=False)

# Dataset name -> the config `//train:samis` runs by default.
DEFAULT_CONFIGS = {
    "digits": DIGITS.name,
    "cifar10:3.0.2": CIFAR10.name,
    "cifar100:3.0.2": CIFAR100.name,
}
