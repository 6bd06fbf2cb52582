"""Dataset readers: MNIST / Fashion-MNIST (IDX), CIFAR-10 (python batches), image folders,
and the MNIST digits bundled with convnet."""
from .cifar import CIFAR10, CIFARError, read_cifar_batch  # noqa: F401
from .detection import (  # noqa: F401
    FashionMNISTDetection, MNISTDetection, collate_detection, to_coco,
)
from .folder import IMG_EXTENSIONS, ImageFolder, load_image  # noqa: F401
from .idx import IDXError, read_idx, write_idx  # noqa: F401
from .mnist import BundledMNIST, FashionMNIST, MNIST  # noqa: F401
from .segmentation import ForegroundSegmentation  # noqa: F401
