"""The model zoo: classic CNN architectures from LeNet-5 to ViT, as readable ``nn.Module`` classes.

``convnet.models.create(name, num_classes=10, in_channels=1, **options)`` builds one by
name, ``list_models()`` lists the names, ``load_weights(model, path)`` loads a
torchvision-named state dict from ``.safetensors`` or ``.npz``. Each family file documents its
paper, its idea and its options (``small_input=True`` adapts ImageNet stems to 28/32 px).
"""
from .registry import create, list_models, load_weights, register  # noqa: F401
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
