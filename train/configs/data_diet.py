r"""Data Diet's recipe for EL2N and GraNd (Paul, Ganguli, Dziugaite, 2021).

The protocol of `/work/shared/spec/methods.md`: 200 epochs, batch 128, SGD
with Nesterov momentum 0.9, learning rate 0.1, weight decay 5e-4, the rate
x0.2 at epochs 60, 120 and 160 (`lr_schedule="step"`), CIFAR augmentation.
As the code runs it (`mansheej/data_diet`, `scripts/run_full_data.py`:
lr 0.1, Nesterov 0.9, weight decay 5e-4, x0.2 at steps 60/120/160 x 390,
200 x 390 steps, batch 128, augmentation). Architectures: the paper's
ResNet18 for CIFAR-10 and ResNet50 for CIFAR-100 (the repo's
`resnet18_lowres` / `resnet50_lowres`; here `cifar_resnet18` and
`cifar_resnet50`, the CIFAR variants: 3x3 stem, no max-pool). The code
counts 390 steps per epoch (50,000 / 128 rounded down), we count 391.
EL2N is scored at epoch 20 (the paper, CIFAR-10, 10 runs), GraNd at 0:

    bazel run //train:scores -- --method=el2n --dataset=cifar10:3.0.2 \
        --config=cifar10_data_diet --seeds=0:10 --score_epochs=20 \
        --output=/data/cifar10-el2n.npz
    bazel run //train:scores -- --method=grand --dataset=cifar10:3.0.2 \
        --config=cifar10_data_diet --seeds=0:10 --score_epochs=0 \
        --output=/data/cifar10-grand.npz
    bazel run //train:scores -- --method=forgetting \
        --dataset=cifar10:3.0.2 --config=cifar10_data_diet --seeds=0:10 \
        --output=/data/cifar10-forgetting.npz   # all 200 epochs
(CIFAR-100: `--dataset=cifar100:3.0.2 --config=cifar100_data_diet`.) Add
`--num_workers=W --worker_index=I` on machine I to share the seeds.

Expected time on the project's 2-core CPU (estimated from a measured step,
not a measured run): one training step of `cifar_resnet18` at batch 128
(`train.loop.Trainer.fit` on 640 random 32x32x3 images, epochs 2 and 3 timed
so that tracing is excluded) took 4.7 to 6.0 s, say 5 s, so an epoch of
50,000 images (391 steps) takes about 33 minutes: EL2N at epoch 20 about
11 hours per seed (110 hours for the paper's 10 seeds), GraNd at epoch 0
only the scoring pass (per-example gradients of 50,000 images, not
measured), the 200-epoch forgetting run about 4.5 days per seed. A GPU job,
not a CPU one.

`--config=digits_data_diet` is the same recipe scaled to digits (MLP 256,
20 epochs, x0.2 at epochs 6/12/16; EL2N at epoch 2, a tenth of training as
the paper's 20 of 200). Measured on the 2-core CPU:
    bazel run //train:scores -- --method=el2n --dataset=digits \
        --config=digits_data_diet --seeds=0:10 --score_epochs=2 \
        --output=/tmp/digits-el2n.npz
takes about 15 s (10 seeds, start-up included), `--method=grand
--score_epochs=0` about 11 s, `--method=forgetting` (all 20 epochs) about
15 s.
"""

from train.configs import base

CIFAR10 = base.TrainConfig(
    name="cifar10_data_diet",
    dataset="cifar10:3.0.2",
    arch="cifar_resnet18",
    epochs=200,
    batch_size=128,
    optimizer="momentum",
    learning_rate=0.1,
    momentum=0.9,
    nesterov=True,
    lr_schedule="step",
    lr_boundaries_epochs=(60, 120, 160),
    lr_decay=0.2,
    weight_decay=5e-4,
    augment=True,
)

CIFAR100 = CIFAR10.replace(name="cifar100_data_diet", dataset="cifar100:3.0.2",
                           arch="cifar_resnet50")

DIGITS = CIFAR10.replace(
    name="digits_data_diet", dataset="digits", arch="mlp",
    arch_kwargs={"hidden_sizes": (256,)}, epochs=20,
    lr_boundaries_epochs=(6, 12, 16), augment=False)
