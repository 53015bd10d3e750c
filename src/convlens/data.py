"""Input images for the demo: a CIFAR-10 test image when the data set is on disk, else a photo
that ships with the install (matplotlib's sample ``grace_hopper.jpg``), resized to 32x32.

Both are normalised as the seed does: ``(x - 0.5) / 0.5`` per channel, values in [-1, 1].
Nothing is downloaded unless ``download=True`` is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import torch
import torch.nn.functional as F

from convlens.errors import ArgumentError

CIFAR10_CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_FOLDER = "cifar-10-batches-py"


class DataError(ArgumentError):
    """The data a user pointed at cannot be used (missing, unreadable, index out of range)."""


@dataclass(frozen=True)
class DemoImage:
    """A normalised (3, 32, 32) image, the same image in [0, 1] for display, and where it came from."""

    normalized: torch.Tensor
    display: torch.Tensor
    source: str


def normalize(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] with mean 0.5 and std 0.5 per channel, as the seed's transform."""
    return (image - 0.5) / 0.5


def bundled_image(size: int = 32) -> DemoImage:
    """matplotlib's sample photo, centre-cropped to a square and resized to size x size."""
    import matplotlib.cbook
    import matplotlib.image

    # a .jpg comes back as an open binary file (the stubs also allow an array, for .npy files)
    with cast(BinaryIO, matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as handle:
        pixels = matplotlib.image.imread(handle, format="jpg")  # (H, W, 3) uint8
    small = square_resized(torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255.0, size)
    return DemoImage(normalize(small), small, f"grace_hopper.jpg (matplotlib sample data), {size}x{size}")


def square_resized(image: torch.Tensor, size: int) -> torch.Tensor:
    """A (3, H, W) image in [0, 1] centre-cropped to a square and resized to (3, size, size)."""
    height, width = image.shape[1:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[:, top : top + side, left : left + side]
    small = F.interpolate(square.unsqueeze(0), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return small.squeeze(0).clamp(0.0, 1.0)


def image_file(path: Path, size: int) -> torch.Tensor:
    """A picture file (any format Pillow reads) as a (3, size, size) image in [0, 1], centre-cropped;
    a DataError that names the file when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            pixels = torch.from_numpy(np.asarray(picture.convert("RGB")).copy())
    except FileNotFoundError as error:
        raise DataError(f"--image {path}: no such file") from error
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"--image {path}: not an image Pillow can read ({error})") from error
    return square_resized(pixels.permute(2, 0, 1).float() / 255.0, size)


def has_cifar10(root: Path) -> bool:
    return (Path(root) / CIFAR10_FOLDER / "test_batch").is_file()


def cifar10_image(root: Path, index: int = 0, download: bool = False) -> DemoImage:
    """Test image ``index`` of CIFAR-10 under ``root``, loaded with torchvision."""
    import torchvision
    from torchvision.transforms.functional import to_tensor

    root = Path(root)
    if not download and not has_cifar10(root):
        raise DataError(
            f"no CIFAR-10 under --data-root {root} (expected {root / CIFAR10_FOLDER / 'test_batch'}); "
            "pass --download to fetch it, or leave --data-root out to use the bundled image"
        )
    try:
        test_set = torchvision.datasets.CIFAR10(root=str(root), train=False, download=download)
    except (RuntimeError, OSError, ValueError) as error:
        raise DataError(f"cannot read CIFAR-10 under {root}: {error}") from error
    if not 0 <= index < len(test_set):
        raise DataError(f"--index must be in [0, {len(test_set) - 1}] for the CIFAR-10 test set, got {index}")
    picture, label = test_set[index]
    display = to_tensor(picture)  # (3, 32, 32) in [0, 1]
    return DemoImage(normalize(display), display, f"CIFAR-10 test image {index} ({CIFAR10_CLASSES[label]})")


def demo_image(data_root: Path | None = None, index: int = 0, download: bool = False) -> DemoImage:
    """CIFAR-10 test image ``index`` when ``data_root`` is given, else the bundled photo."""
    if data_root is None:
        return bundled_image()
    return cifar10_image(data_root, index, download)
