"""Checkpoint-compatible Sonnet modules and the registry that names them."""

from heldout.models import inception
from heldout.models import mlp
from heldout.models import registry
from heldout.models import resnet
from heldout.models import resnet_sonnet
from heldout.models.inception import SmallInception
from heldout.models.mlp import MLP
from heldout.models.mlp import SmallCNN
from heldout.models.registry import ARCHITECTURES
from heldout.models.registry import build_model
from heldout.models.registry import infer_architecture
from heldout.models.registry import infer_input_shape
from heldout.models.registry import key_manifest
from heldout.models.registry import model_variable_shapes
from heldout.models.resnet import CifarResNet18
from heldout.models.resnet import CifarResNet50
from heldout.models.resnet import ResNetV2
from heldout.models.resnet_sonnet import ResNet50

__all__ = [
    "ARCHITECTURES",
    "CifarResNet18",
    "CifarResNet50",
    "MLP",
    "ResNet50",
    "ResNetV2",
    "SmallCNN",
    "SmallInception",
    "build_model",
    "inception",
    "infer_architecture",
    "infer_input_shape",
    "key_manifest",
    "mlp",
    "model_variable_shapes",
    "registry",
    "resnet",
    "resnet_sonnet",
]
