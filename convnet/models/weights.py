"""torchvision's weight-enum names (``ResNet18_Weights.DEFAULT`` ...), so scripts that name
pretrained weights import and fail with one clear message instead of an ImportError.

convnet downloads nothing: passing any member as ``weights=`` raises the factory's
"load a local file with ``load_weights``" error (:func:`convnet.models.registry.pretrained_file`).
"""
from __future__ import annotations

import enum

__all__: list[str] = []


def _weights_enum(name: str, model: str) -> type:
    """An Enum with torchvision's ``IMAGENET1K_V1`` member and its ``DEFAULT`` alias."""
    cls = enum.Enum(name, {"IMAGENET1K_V1": f"{model}: ImageNet-1k weights (torchvision)"})
    cls.DEFAULT = cls.IMAGENET1K_V1  # torchvision's alias of the recommended weights
    cls.__doc__ = (f"Names torchvision's pretrained weights for ``{model}``; convnet does not "
                   "download them (see convnet.models.load_weights for a local file).")
    cls.__module__ = __name__
    return cls


_MODELS = {
    "ResNet18_Weights": "resnet18", "ResNet34_Weights": "resnet34",
    "ResNet50_Weights": "resnet50", "ResNet101_Weights": "resnet101",
    "VGG11_Weights": "vgg11", "VGG11_BN_Weights": "vgg11_bn", "VGG13_Weights": "vgg13",
    "VGG13_BN_Weights": "vgg13_bn", "VGG16_Weights": "vgg16", "VGG16_BN_Weights": "vgg16_bn",
    "VGG19_Weights": "vgg19", "VGG19_BN_Weights": "vgg19_bn", "AlexNet_Weights": "alexnet",
    "GoogLeNet_Weights": "googlenet", "MobileNet_V2_Weights": "mobilenet_v2",
    "SqueezeNet1_1_Weights": "squeezenet1_1",
    "ShuffleNet_V2_X0_5_Weights": "shufflenet_v2_x0_5",
    "ShuffleNet_V2_X1_0_Weights": "shufflenet_v2_x1_0",
    "ShuffleNet_V2_X1_5_Weights": "shufflenet_v2_x1_5",
    "ShuffleNet_V2_X2_0_Weights": "shufflenet_v2_x2_0",
    "ViT_B_16_Weights": "vit_b_16",
}
for _name, _model in _MODELS.items():
    globals()[_name] = _weights_enum(_name, _model)
    __all__.append(_name)
