"""Small offline data sets, each returning ``(X, y)`` tensors ready for a model.

Every function takes ``n=`` (how many samples) and ``seed=`` (which random draw).
The same seed always gives the same tensors, and no function touches PyTorch's
global random state, so loading data never changes what a model's
initialisation or a training run would otherwise do.

The seed only decides which samples are drawn, never the problem itself: the
moons, the spirals, the blob centres and the hidden weights of ``linear`` are
the same for every seed, so ``moons(seed=1)`` is fresh data from the same
problem as ``moons(seed=0)`` and can serve as a test set for it.

The classification toys list their samples in a shuffled order and split ``n``
as evenly as possible between the classes, so any slice (say, the last 20% as
a validation set) holds a fair mix of classes.
"""

from __future__ import annotations

import gzip
import math
import numbers
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from trainlab.arguments import is_whole_number
from trainlab.makers import data_maker
from trainlab.options import check_seed

__all__ = ["moons", "circles", "spiral", "xor", "blobs", "linear", "linear_rule", "sine", "digits"]

DIGITS_ROWS = 1797  # rows in the shipped UCI test set
# Next to this module (not via importlib.resources) so it also resolves while
# trainlab is a namespace package without an __init__.py.
_DIGITS_FILE = Path(__file__).parent / "data" / "digits.csv.gz"

# The seed of the generator that draws linear()'s hidden weights: a constant,
# so every data seed samples the same underlying line.
_LINEAR_WEIGHTS_SEED = 1234
_BLOB_SPACING = 6.0  # distance between neighbouring blob centres
_XOR_PADDING = 0.1  # keeps the clean XOR points this far from the axes

# The parsed digits file, loaded on first use so importing trainlab stays fast.
_digits_cache: tuple[Tensor, Tensor] | None = None


# --- classification toys ---------------------------------------------------


@data_maker("moons")
def moons(n: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two interleaving half circles: X is (n, 2) float points, y is (n,) labels 0 or 1."""
    n = _check_n(n)
    _check_noise(noise)
    g = _generator(seed)
    y = _balanced_labels(n, 2)
    t = math.pi * torch.rand(n, generator=g)
    # Class 0 is the upper arc of the unit circle; class 1 is the same arc
    # flipped and shifted so its tips reach into the first one's middle.
    outer = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    inner = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    X = torch.where((y == 0).unsqueeze(1), outer, inner)
    return _shuffled(_noisy(X, noise, g), y, g)


@data_maker("circles")
def circles(n: int = 400, noise: float = 0.1, factor: float = 0.5, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A small circle inside a big one: X is (n, 2) float points, y is (n,) labels (1 = inner)."""
    n = _check_n(n)
    _check_noise(noise)
    if not (_is_real(factor) and 0 < factor < 1):
        raise ValueError(
            f"factor is the inner circle's radius relative to the outer one; "
            f"pass a number between 0 and 1 (exclusive), like factor=0.5; got {factor!r}"
        )
    g = _generator(seed)
    y = _balanced_labels(n, 2)
    t = 2 * math.pi * torch.rand(n, generator=g)
    radius = torch.where(y == 0, 1.0, float(factor))
    X = radius.unsqueeze(1) * torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    return _shuffled(_noisy(X, noise, g), y, g)


@data_maker("spiral")
def spiral(n: int = 400, noise: float = 0.1, classes: int = 2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Spiral arms winding round the centre: X is (n, 2) float points, y is (n,) labels 0..classes-1."""
    n = _check_n(n)
    _check_noise(noise)
    if not (is_whole_number(classes) and 2 <= classes <= 5):
        raise ValueError(
            f"classes is the number of spiral arms; pass a whole number from 2 to 5, "
            f"like classes=3; got {classes!r}"
        )
    g = _generator(seed)
    y = _balanced_labels(n, classes)
    # Each arm is the same curve (radius grows with the angle) turned by an
    # equal share of a full circle, so the arms never cross. An arm winds
    # 2/classes of a turn (one turn for 2 arms, about CS231n's for 3), which
    # keeps neighbouring arms half a unit apart for any number of classes, so
    # the default noise stays learnable.
    r = torch.rand(n, generator=g)
    angle = 2 * math.pi * (2 * r + y) / classes
    X = r.unsqueeze(1) * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return _shuffled(_noisy(X, noise, g), y, g)


@data_maker("xor")
def xor(n: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Four corner clusters: X is (n, 2) float points, y is (n,) labels, 1 where x0 and x1 differ in sign."""
    n = _check_n(n)
    _check_noise(noise)
    g = _generator(seed)
    y = _balanced_labels(n, 2)
    # Within each class, alternate between its two quadrants so they get equal
    # shares: class 0 is (+,+) and (-,-), class 1 is (+,-) and (-,+).
    within = torch.cat([torch.arange(int((y == c).sum())) for c in (0, 1)])
    sign0 = torch.where(within % 2 == 0, 1.0, -1.0)
    sign1 = torch.where(y == 0, sign0, -sign0)
    # Like TensorFlow Playground, labels come from the clean points; the
    # padding keeps those off the axes, and noise may then push a few across.
    size = _XOR_PADDING + (1 - _XOR_PADDING) * torch.rand(n, 2, generator=g)
    X = size * torch.stack([sign0, sign1], dim=1)
    return _shuffled(_noisy(X, noise, g), y, g)


@data_maker("blobs")
def blobs(n: int = 400, centers: int = 3, std: float = 1.0, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Round clouds of points, one per class: X is (n, 2) float points, y is (n,) labels 0..centers-1."""
    n = _check_n(n)
    if not (is_whole_number(centers) and centers >= 2):
        raise ValueError(
            f"centers is the number of blobs (classes); pass a whole number of at least 2, "
            f"like centers=3; got {centers!r}"
        )
    if not (_is_real(std) and std >= 0 and math.isfinite(std)):
        raise ValueError(
            f"std is the spread of each blob; pass a number 0 or above, like std=1.0; got {std!r}"
        )
    g = _generator(seed)
    y = _balanced_labels(n, centers)
    # Centres sit on a circle whose radius keeps neighbours _BLOB_SPACING apart,
    # so more blobs spread out instead of piling onto each other.
    radius = _BLOB_SPACING / (2 * math.sin(math.pi / centers))
    angle = 2 * math.pi * y / centers
    X = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return _shuffled(_noisy(X, std, g), y, g)


# --- regression --------------------------------------------------------------


@data_maker("linear")
def linear(n: int = 100, features: int = 10, noise: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Targets from a hidden linear rule, for nn.Linear(features, 1): X is (n, features), y is (n, 1)."""
    n = _check_n(n)
    _check_noise(noise)
    if not (is_whole_number(features) and features >= 1):
        raise ValueError(
            f"features is the number of input columns; pass a whole number of at least 1, "
            f"like features=10; got {features!r}"
        )
    # The hidden weights come from their own fixed generator, not from seed,
    # so every seed samples the same rule (and seed=1 can test a fit on seed=0).
    weight, bias = linear_rule(features)
    g = _generator(seed)
    X = torch.randn(n, features, generator=g)
    y = X @ weight + bias
    return X.to(torch.float32), _noisy(y, noise, g)


def linear_rule(features: int = 10) -> tuple[Tensor, Tensor]:
    """The hidden rule behind ``linear``: ``y = X @ weight + bias`` (+ noise); weight is (features, 1), bias (1,).

    The answer a model trained on ``linear`` should find: ``nn.Linear(features, 1)``'s ``weight`` ends
    near ``weight.T`` and its ``bias`` near ``bias``.
    """
    rule = torch.Generator().manual_seed(_LINEAR_WEIGHTS_SEED)
    weight = torch.randn(int(features), 1, generator=rule)
    return weight, torch.randn(1, generator=rule)


@data_maker("sine")
def sine(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A noisy sine wave: X is (n, 1) angles between -pi and pi, y is (n, 1) their sine plus noise."""
    n = _check_n(n)
    _check_noise(noise)
    g = _generator(seed)
    X = (2 * torch.rand(n, 1, generator=g) - 1) * math.pi
    return X.to(torch.float32), _noisy(torch.sin(X), noise, g)


# --- real data -----------------------------------------------------------------


@data_maker("digits")
def digits(n: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Real 8x8 handwritten digits: X is (n, 1, 8, 8) pixels from 0 to 1, y is (n,) the digit 0..9."""
    # The rows always come in a seeded random order, and n takes the first n
    # of them: a smaller n is a random subset, and digits(n=100) is the start
    # of digits(n=200) for the same seed. n=None means all 1797 rows.
    if n is None:
        n = DIGITS_ROWS
    n = _check_n(n)
    if n > DIGITS_ROWS:
        raise ValueError(
            f"there are only {DIGITS_ROWS} digit images; pass n={DIGITS_ROWS} or less "
            f"(or n=None for all of them); got n={n}"
        )
    images, labels = _load_digits()
    order = torch.randperm(DIGITS_ROWS, generator=_generator(seed))[:n]
    # Indexing copies, so callers can edit what they get without harming the cache.
    return images[order], labels[order]


def _load_digits() -> tuple[Tensor, Tensor]:
    """Parse the shipped digits file once and keep it for later calls."""
    global _digits_cache
    if _digits_cache is None:
        with gzip.open(_DIGITS_FILE, "rt") as text:
            # 64 pixel counts (0..16, row by row) then the label, per line.
            table = np.loadtxt(text, delimiter=",", dtype=np.int64)
        images = torch.from_numpy(table[:, :64]).to(torch.float32).div(16).reshape(-1, 1, 8, 8)
        labels = torch.from_numpy(table[:, 64].copy())
        _digits_cache = (images, labels)
    return _digits_cache


# --- shared helpers ------------------------------------------------------------


def _generator(seed: int) -> torch.Generator:
    """A private random generator, so data never disturbs the global RNG."""
    check_seed(seed)
    return torch.Generator().manual_seed(int(seed))


def _balanced_labels(n: int, classes: int) -> Tensor:
    """Labels 0..classes-1 in blocks, sizes differing by at most one."""
    sizes = [n // classes + (1 if c < n % classes else 0) for c in range(classes)]
    return torch.repeat_interleave(torch.arange(classes), torch.tensor(sizes))


def _noisy(X: Tensor, noise: float, g: torch.Generator) -> Tensor:
    """X plus Gaussian noise with standard deviation ``noise``, as float32."""
    return (X + noise * torch.randn(X.shape, generator=g)).to(torch.float32)


def _shuffled(X: Tensor, y: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """X and y in the same random order, so no slice is all one class."""
    order = torch.randperm(len(y), generator=g)
    return X[order], y[order]


def _check_n(n: object) -> int:
    """Return n as an int, or reject it if it is not a positive whole number."""
    if not (is_whole_number(n) and n >= 1):
        raise ValueError(
            f"n is the number of samples; pass a whole number of at least 1, like n=400; got {n!r}"
        )
    return int(n)


def _check_noise(noise: object) -> None:
    """Reject a noise level that is negative or not a finite number."""
    if not (_is_real(noise) and noise >= 0 and math.isfinite(noise)):
        raise ValueError(
            f"noise is the standard deviation of the added noise; pass a number 0 or above, "
            f"like noise=0.1; got {noise!r}"
        )


def _is_real(value: object) -> bool:
    """True for real numbers (including numpy's), but not for True/False."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
