r"""SSFT's recipe (Maini, Garg, Lipton, Kolter, 2022): second-split forgetting.

As SSFT's code runs it (`pratyushmaini/ssft`: `params.py` defaults,
`utils.get_scheduler_epochs("triangle")`, `trainer.sh`): SGD momentum 0.9,
weight decay 5e-4, batch 512, a triangular learning rate peaking at 0.1:
linear from 0 at step 0 to the peak at epoch 10, then linear to 0 at epoch
100 (here `lr_schedule="linear"`, `warmup_epochs=10`, `epochs=100`). Each
phase (`heldout.scores.second_split`) builds a new optimizer and runs the
schedule from its start for at most 100 epochs (`--second_epochs` defaults
to the config's epochs), ending once 5 epochs had 100% training accuracy
(`--patience=5`). Ours, not the code's: `cifar_resnet18` for CIFAR (the
code's default is its ResNet-9) and `small_cnn` for MNIST; the code's
schedule counts `len(loader) + 1` steps per epoch, which shifts its peak by
a few steps.

    bazel run //train:scores -- --method=ssft --dataset=cifar10:3.0.2 \
        --config=cifar10_ssft --seeds=0:5 --output=/data/cifar10-ssft.npz
(CIFAR-100: `--dataset=cifar100:3.0.2 --config=cifar100_ssft`; MNIST:
`--dataset=mnist --config=mnist_ssft`.) Add `--num_workers=W
--worker_index=I` on machine I to share the seeds.

Expected time on the project's 2-core CPU (estimated from measured steps,
not measured runs; `train.loop.Trainer.fit` on random data at batch 128,
epochs 2 and 3 timed so that tracing is excluded): a `cifar_resnet18` step
at batch 128 took about 5 s (4.7 to 6.0), so a CIFAR epoch on a half (25,000
images) about 16 minutes plus the per-epoch correctness pass over the half;
a seed (two halves, each say 30 epochs of phase 1 and 30 of phase 2: 120
half-epochs) about 35 hours or more: a GPU job. MNIST with `small_cnn`: a
half-epoch (30,000 images) about 26 s, a seed of 2 x (30 + 30) epochs about
55 minutes plus the correctness passes.

`--config=digits_ssft` (MLP 256, batch 64, at most 20 epochs per phase,
peak at epoch 2) is a quick local run, measured on the 2-core CPU:
    bazel run //train:scores -- --method=ssft --dataset=digits \
        --config=digits_ssft --seeds=0:5 --output=/tmp/digits-ssft.npz
takes about 18 s (5 seeds, start-up included).
"""

from train.configs import base

CIFAR10 = base.TrainConfig(
    name="cifar10_ssft",
    dataset="cifar10:3.0.2",
    arch="cifar_resnet18",
    epochs=100,
    batch_size=512,
    optimizer="momentum",
    learning_rate=0.1,
    momentum=0.9,
    lr_schedule="linear",
    warmup_epochs=10.0,
    weight_decay=5e-4,
    augment=True,
)

CIFAR100 = CIFAR10.replace(name="cifar100_ssft", dataset="cifar100:3.0.2")

MNIST = CIFAR10.replace(
    name="mnist_ssft", dataset="mnist", arch="small_cnn",
    arch_kwargs={"channels": (32, 64), "hidden": 128}, augment=False)

DIGITS = CIFAR10.replace(
    name="digits_ssft", dataset="digits", arch="mlp",
    arch_kwargs={"hidden_sizes": (256,)}, epochs=20, warmup_epochs=2.0,
    batch_size=64, augment=False)
