"""Heldout training: data order, the training loop, runs, K runs at once.

Modules: `subsets` (what a run trains on, from its id), `optim` (schedules
and the update rule), `loop` (one model under a tf.distribute strategy),
`heldout_training` (runs in the released layout, resumable), `batched` (K
small models at once), `configs` (recipes per dataset), `multi_worker` (one
model across worker processes, from `TF_CONFIG`), `sam` (sharpness-aware
minimization as a `Trainer`), `samis_training` (paired SGD/SAM runs and the
SAMIS memorization proxies).
"""

from train import configs
from train import subsets
from train import optim
from train import multi_worker
from train import loop
from train import heldout_training
from train import batched
from train import sam
from train import samis_training
from train.batched import BatchedTrainer
from train.batched import train_heldout_batched
from train.configs import TrainConfig
from train.configs import get_config
from train.heldout_training import train_heldout
from train.loop import Callback
from train.loop import Trainer
from train.loop import make_strategy
from train.multi_worker import MultiWorkerReplicator
from train.sam import SAMTrainer

__all__ = [
    "BatchedTrainer",
    "Callback",
    "MultiWorkerReplicator",
    "SAMTrainer",
    "TrainConfig",
    "Trainer",
    "batched",
    "configs",
    "get_config",
    "heldout_training",
    "loop",
    "make_strategy",
    "multi_worker",
    "optim",
    "sam",
    "samis_training",
    "subsets",
    "train_heldout",
    "train_heldout_batched",
]
