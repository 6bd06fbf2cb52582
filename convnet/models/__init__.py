"""The model zoo: classic CNN architectures from LeNet-5 to ViT, as readable ``nn.Module`` classes.

``convnet.models.create(name, num_classes=10, in_channels=1, **options)`` builds one by
name, ``list_models()`` lists the names, ``load_weights(model, path)`` loads a
torchvision-named state dict from ``.safetensors`` or ``.npz``. Each family file documents its
paper, its idea and its options (``small_input=True`` adapts ImageNet stems to 28/32 px).

Without building anything: ``model_options(name)`` lists a model's options and defaults,
``count_parameters(name, ...)`` counts its parameters, ``check_input_size(name, side)``,
``fit_input(name, side)`` and ``min_input_size(name)`` say which image sizes it takes and
which option adapts it (see :mod:`convnet.models.registry`).
"""
from .registry import (  # noqa: F401
    InputRule, InputSizeError, check_input_size, count_parameters, create, fit_input,
    input_rule, list_models, load_weights, min_input_size, model_info, model_options, register,
)
from .lenet import *  # noqa: F401,F403
from .simple_cnn import *  # noqa: F401,F403
from .alexnet import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
from .googlenet import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .mobilenet import *  # noqa: F401,F403
from .shufflenet import *  # noqa: F401,F403
from .squeezenet import *  # noqa: F401,F403
from .unet import *  # noqa: F401,F403
from .vit import *  # noqa: F401,F403
from .weights import *  # noqa: F401,F403
from . import detection  # noqa: F401,E402  (registers retinanet_tiny, fasterrcnn_tiny)
