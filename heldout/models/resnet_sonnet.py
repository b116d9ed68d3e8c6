"""Sonnet's own ResNets: the architecture of the released ImageNet runs.

The `imagenet-resnet50` checkpoints were written by `snt.nets.ResNet50` of
dm-sonnet 2.0.x, whose attribute structure (`_initial_conv`,
`_initial_batchnorm`, `_block_groups/i/_blocks/j/_layers/k/{0,1}`,
`_proj_conv`, `_proj_batchnorm`, `_logits`) the current class keeps, so it is
used as is. Called as `model(images, is_training)` on
[batch, 224, 224, 3] float32 normalized images; returns
[batch, num_classes] float32 logits.
"""

import sonnet as snt

ResNet = snt.nets.ResNet
ResNet50 = snt.nets.ResNet50
