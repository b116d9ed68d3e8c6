r"""SSFT's recipe (Maini, Garg, Lipton, Kolter, 2022): second-split forgetting.

The protocol of `/work/shared/spec/methods.md`: SGD momentum 0.9, weight
decay 5e-4, a triangular learning rate; phase 1 trains on one half for up to
100 epochs and stops after 5 consecutive epochs at 100% training accuracy
(`--patience=5`), phase 2 trains on the other half (`--second_epochs`).
The triangular schedule is `lr_schedule="linear"` with `warmup_epochs =
0.4 * epochs`: linear from 0 up to the peak at 40% of the config's epochs,
then linear down to 0 at its end (`train/optim.py`). Our choices, not checked
against SSFT's code here: the peak 0.1 at 40%, batch 128, `cifar_resnet18`
for CIFAR and `small_cnn` for MNIST, 50 second-phase epochs.
Caveat: phase 2 continues the first phase's step count, so it runs on the
schedule's tail (rate 0 from the config's last epoch on); phase 1 usually
stops early once fit, but a phase 1 that runs all its epochs leaves phase 2
at rate 0.

    bazel run //train:scores -- --method=ssft --dataset=cifar10:3.0.2 \
        --config=cifar10_ssft --seeds=0:5 --second_epochs=50 --patience=5 \
        --output=/data/cifar10-ssft.npz
(CIFAR-100: `--dataset=cifar100:3.0.2 --config=cifar100_ssft`; MNIST:
`--dataset=mnist --config=mnist_ssft`.) Add `--num_workers=W
--worker_index=I` on machine I to share the seeds.

Expected time on the project's 2-core CPU (estimated from measured steps,
not measured runs; `train.loop.Trainer.fit` on random data, epochs 2 and 3
timed so that tracing is excluded): a `cifar_resnet18` step at batch 128
took about 5 s (4.7 to 6.0), so a CIFAR epoch on a half (25,000 images, 196
steps) about 16 minutes plus the per-epoch correctness pass over the half;
a seed (two halves, each say 30 epochs of phase 1 and 50 of phase 2: 160
half-epochs) about 45 hours or more: a GPU job. MNIST with `small_cnn`: a
step took about 0.11 s, a half-epoch (30,000 images, 235 steps) about 26 s,
a seed of 2 x (30 + 50) epochs about 70 minutes plus the correctness passes.

`--config=digits_ssft` (MLP 256, phase 1 up to 20 epochs, peak at epoch 8)
is a quick local run, measured on the 2-core CPU:
    bazel run //train:scores -- --method=ssft --dataset=digits \
        --config=digits_ssft --seeds=0:5 --second_epochs=10 --patience=5 \
        --output=/tmp/digits-ssft.npz
takes about 18 s (5 seeds, start-up included).
"""

from train.configs import base

CIFAR10 = base.TrainConfig(
    name="cifar10_ssft",
    dataset="cifar10:3.0.2",
    arch="cifar_resnet18",
    epochs=100,
    batch_size=128,
    optimizer="momentum",
    learning_rate=0.1,
    momentum=0.9,
    lr_schedule="linear",
    warmup_epochs=40.0,
    weight_decay=5e-4,
    augment=True,
)

CIFAR100 = CIFAR10.replace(name="cifar100_ssft", dataset="cifar100:3.0.2")

MNIST = CIFAR10.replace(
    name="mnist_ssft", dataset="mnist", arch="small_cnn",
    arch_kwargs={"channels": (32, 64), "hidden": 128}, augment=False)

DIGITS = CIFAR10.replace(
    name="digits_ssft", dataset="digits", arch="mlp",
    arch_kwargs={"hidden_sizes": (256,)}, epochs=20, warmup_epochs=8.0,
    augment=False)
