"""Tests for trainlab.datasets: shapes, determinism, balance, geometry and the shipped digits."""

import ast
import hashlib
import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

import trainlab.datasets as ds

CLASSIFIERS = {  # name -> (function, number of classes with default arguments)
    "moons": (ds.moons, 2),
    "circles": (ds.circles, 2),
    "spiral": (ds.spiral, 2),
    "xor": (ds.xor, 2),
    "blobs": (ds.blobs, 3),
}
REGRESSIONS = {"linear": (ds.linear, 10), "sine": (ds.sine, 1)}  # name -> (function, features)
ALL = [f for f, _ in CLASSIFIERS.values()] + [f for f, _ in REGRESSIONS.values()] + [ds.digits]


def _ids(fn):
    return fn.__name__


# --- shapes and dtypes -------------------------------------------------------


@pytest.mark.parametrize("fn", [f for f, _ in CLASSIFIERS.values()], ids=list(CLASSIFIERS))
@pytest.mark.parametrize("n", [1, 7, 400, 1001])
def test_classifier_shapes_and_dtypes(fn, n):
    X, y = fn(n=n)
    assert X.shape == (n, 2) and X.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert torch.isfinite(X).all()


@pytest.mark.parametrize("name", list(REGRESSIONS))
@pytest.mark.parametrize("n", [1, 5, 300])
def test_regression_shapes_and_dtypes(name, n):
    fn, features = REGRESSIONS[name]
    X, y = fn(n=n)
    assert X.shape == (n, features) and X.dtype == torch.float32
    assert y.shape == (n, 1) and y.dtype == torch.float32


def test_default_sizes():
    assert [len(f()[1]) for f in ALL] == [400, 400, 400, 400, 400, 100, 200, 1797]


def test_linear_features_sets_columns():
    X, _ = ds.linear(n=20, features=3)
    assert X.shape == (20, 3)


def test_numpy_integers_are_accepted():
    X, _ = ds.moons(n=np.int64(10), seed=np.int32(1))
    assert X.shape == (10, 2) and torch.equal(X, ds.moons(n=10, seed=1)[0])


def test_float32_even_when_default_dtype_is_float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        dtypes = {f.__name__: f()[0].dtype for f in ALL}
    finally:
        torch.set_default_dtype(old)
    assert set(dtypes.values()) == {torch.float32}, dtypes


# --- determinism and the global RNG -------------------------------------------


@pytest.mark.parametrize("fn", ALL, ids=_ids)
def test_same_seed_same_tensors(fn):
    X1, y1 = fn(seed=3)
    X2, y2 = fn(seed=3)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)


@pytest.mark.parametrize("fn", ALL, ids=_ids)
def test_different_seed_different_tensors(fn):
    X1, _ = fn(seed=0)
    X2, _ = fn(seed=1)
    assert not torch.equal(X1, X2)


@pytest.mark.parametrize("fn", ALL, ids=_ids)
def test_global_rng_is_untouched(fn):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fn(seed=5)
    assert torch.equal(torch.rand(3), expected)


# --- class balance and order ---------------------------------------------------


@pytest.mark.parametrize(
    "fn, classes",
    [
        (ds.moons, 2),
        (ds.circles, 2),
        (ds.xor, 2),
        (lambda n: ds.spiral(n=n, classes=3), 3),
        (lambda n: ds.spiral(n=n, classes=5), 5),
        (lambda n: ds.blobs(n=n, centers=4), 4),
        (lambda n: ds.blobs(n=n, centers=7), 7),
    ],
)
@pytest.mark.parametrize("n", [3, 10, 401, 999])
def test_classes_are_balanced(fn, classes, n):
    _, y = fn(n=n)
    counts = torch.bincount(y, minlength=classes)
    assert len(counts) == classes
    assert counts.sum() == n
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("fn", [*(f for f, _ in CLASSIFIERS.values()), ds.digits], ids=_ids)
def test_samples_are_shuffled_not_sorted_by_class(fn):
    _, y = fn(n=400)
    changes = int((y[1:] != y[:-1]).sum())
    # Sorted data would change label only classes-1 times; shuffled two-class
    # data changes about n/2 times.
    assert changes > len(y) / 4
    # A tail taken as a validation split still sees every class.
    assert set(y[-80:].tolist()) == set(y.tolist())


# --- geometry: each toy is the shape its name promises --------------------------


def test_moons_noise_free_points_lie_on_the_two_arcs():
    X, y = ds.moons(n=200, noise=0.0)
    upper, lower = X[y == 0], X[y == 1]
    assert torch.allclose(upper.norm(dim=1), torch.ones(len(upper)), atol=1e-5)
    assert (upper[:, 1] >= -1e-6).all()
    shifted = lower - torch.tensor([1.0, 0.5])
    assert torch.allclose(shifted.norm(dim=1), torch.ones(len(lower)), atol=1e-5)
    assert (shifted[:, 1] <= 1e-6).all()


def test_circles_noise_free_radii_are_one_and_factor():
    X, y = ds.circles(n=200, noise=0.0, factor=0.3)
    radius = X.norm(dim=1)
    assert torch.allclose(radius[y == 0], torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(radius[y == 1], torch.tensor(0.3), atol=1e-5)


def test_xor_noise_free_label_is_sign_disagreement():
    X, y = ds.xor(n=400, noise=0.0)
    assert torch.equal(y, ((X[:, 0] > 0) != (X[:, 1] > 0)).long())
    assert (X.abs() >= 0.1 - 1e-6).all()  # kept off the axes
    quadrants = torch.bincount(2 * (X[:, 0] > 0).long() + (X[:, 1] > 0).long())
    assert quadrants.tolist() == [100, 100, 100, 100]


@pytest.mark.parametrize("classes", [2, 3, 4, 5])
def test_spiral_noise_free_arms_are_rotated_copies(classes):
    X, y = ds.spiral(n=500, noise=0.0, classes=classes)
    assert (X.norm(dim=1) <= 1 + 1e-6).all()
    # Undo each arm's turn: every point then lies on arm 0's curve,
    # whose angle is 2*pi * (2/classes) * radius.
    r = X.norm(dim=1)
    turn = 2 * math.pi * y / classes
    angle = 4 * math.pi * r / classes + turn
    expected = r.unsqueeze(1) * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    assert torch.allclose(X, expected, atol=1e-4)


@pytest.mark.parametrize("centers", [2, 3, 6])
def test_blobs_std_zero_puts_each_class_on_one_point_six_apart(centers):
    X, y = ds.blobs(n=60, centers=centers, std=0.0)
    points = torch.stack([X[y == c][0] for c in range(centers)])
    for c in range(centers):
        assert torch.allclose(X[y == c], points[c].expand_as(X[y == c]))
    neighbours = (points - points.roll(1, dims=0)).norm(dim=1)
    assert torch.allclose(neighbours, torch.tensor(6.0), atol=1e-4)


def test_blobs_spread_follows_std():
    X, y = ds.blobs(n=3000, centers=3, std=0.5)
    spread = torch.stack([X[y == c].std(dim=0) for c in range(3)])
    assert torch.allclose(spread, torch.tensor(0.5), atol=0.05)


def test_linear_noise_free_is_exactly_affine_and_same_rule_for_every_seed():
    fits = []
    for seed in (0, 1):
        X, y = ds.linear(n=50, features=4, noise=0.0, seed=seed)
        design = torch.cat([X, torch.ones(50, 1)], dim=1).double()
        solution = torch.linalg.lstsq(design, y.double()).solution
        assert torch.allclose(design @ solution, y.double(), atol=1e-5)
        fits.append(solution)
    assert torch.allclose(fits[0], fits[1], atol=1e-5)
    weight, bias = ds.linear_rule(features=4)  # the rule itself, as notebook 1 compares a trained model with it
    assert torch.allclose(fits[0].float(), torch.cat([weight[:, 0], bias]).view(-1, 1), atol=1e-5)


def test_linear_noise_sets_residual_spread():
    X, y = ds.linear(n=4000, features=3, noise=0.5)
    design = torch.cat([X, torch.ones(len(X), 1)], dim=1)
    residual = y - design @ torch.linalg.lstsq(design, y).solution
    assert abs(residual.std().item() - 0.5) < 0.05


def test_sine_is_sine_of_x_in_range():
    X, y = ds.sine(n=300, noise=0.0)
    assert torch.allclose(y, torch.sin(X), atol=1e-6)
    assert X.min() >= -math.pi and X.max() <= math.pi
    assert X.min() < -3 and X.max() > 3  # covers the whole interval


def test_noise_makes_points_scatter():
    clean, _ = ds.moons(n=300, noise=0.0)
    noisy, _ = ds.moons(n=300, noise=0.2)
    assert (noisy - clean).std() == pytest.approx(0.2, abs=0.03)


# --- digits ------------------------------------------------------------------------


def test_digits_full_set():
    X, y = ds.digits()
    assert X.shape == (1797, 1, 8, 8) and X.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(y.tolist()) == set(range(10))
    # Pixels were counts 0..16 divided by 16.
    assert torch.equal(X * 16, (X * 16).round())


def test_digits_subset_is_seeded_prefix_of_a_random_order():
    X100, y100 = ds.digits(n=100, seed=4)
    X300, y300 = ds.digits(n=300, seed=4)
    assert X100.shape == (100, 1, 8, 8)
    assert torch.equal(X100, X300[:100]) and torch.equal(y100, y300[:100])
    assert not torch.equal(y100, ds.digits(n=100, seed=5)[1])


def test_digits_every_seed_holds_the_same_images():
    _, y0 = ds.digits(seed=0)
    _, y1 = ds.digits(seed=1)
    assert not torch.equal(y0, y1)
    assert torch.equal(torch.bincount(y0), torch.bincount(y1))


def test_digits_callers_cannot_corrupt_the_cache():
    X, _ = ds.digits(n=10)
    X.fill_(-1.0)
    assert ds.digits(n=10)[0].min() >= 0.0


def test_digits_content_is_the_uci_test_set():
    # SHA-256 of the pixel counts (1797 x 64) then the labels, as bytes. It was
    # taken when the file was added, after checking every value against
    # scikit-learn's load_digits(), so a parsing slip (a shifted column, a
    # lost row, a wrong scale) fails here without importing scikit-learn.
    X, y = ds._load_digits()
    pixels = (X.reshape(-1, 64) * 16).to(torch.uint8).numpy().tobytes()
    labels = y.to(torch.uint8).numpy().tobytes()
    assert hashlib.sha256(pixels + labels).hexdigest() == (
        "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
    )


def test_digits_file_ships_inside_the_package_and_is_small():
    path = Path(ds.__file__).parent / "data" / "digits.csv.gz"
    assert path.is_file()
    assert path.stat().st_size < 1_000_000
    assert "CC BY 4.0" in (path.parent / "README.md").read_text()


def test_datasets_module_imports_nothing_that_could_reach_the_network():
    # Read the imports from the source, so the check does not depend on what
    # torch or other tests happen to have imported into this process.
    tree = ast.parse(Path(ds.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "gzip", "math", "numbers", "pathlib", "numpy", "torch", "trainlab"}, imported
    from trainlab import options  # its one trainlab import (check_seed) imports nothing from the network either
    assert "socket" not in Path(options.__file__).read_text() and "urllib" not in Path(options.__file__).read_text()


def test_loading_digits_never_touches_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trainlab.datasets tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(ds, "_digits_cache", None)  # force a fresh load from disk
    X, _ = ds.digits()
    assert X.shape == (1797, 1, 8, 8)
    cached = ds._digits_cache
    assert cached is not None
    ds.digits(n=5)
    assert ds._digits_cache is cached  # the second call reused the parsed file


# --- bad arguments -------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL, ids=_ids)
@pytest.mark.parametrize("n", [0, -5, 2.5, "100", True])
def test_bad_n_raises_value_error_saying_what_to_pass(fn, n):
    with pytest.raises(ValueError, match="pass a whole number"):
        fn(n=n)


@pytest.mark.parametrize("fn", ALL, ids=_ids)
@pytest.mark.parametrize("seed", [1.5, -2**63 - 1, 2**64, "0"])
def test_bad_seed_raises(fn, seed):
    with pytest.raises(ValueError, match="seed"):
        fn(seed=seed)


@pytest.mark.parametrize("fn", [ds.moons, ds.circles, ds.spiral, ds.xor, ds.linear, ds.sine], ids=_ids)
@pytest.mark.parametrize("noise", [-0.1, float("nan"), float("inf"), "0.1"])
def test_bad_noise_raises(fn, noise):
    with pytest.raises(ValueError, match=r"noise=0\.1"):
        fn(noise=noise)


@pytest.mark.parametrize(
    "call, hint",
    [
        (lambda: ds.digits(n=1798), "n=1797 or less"),
        (lambda: ds.spiral(classes=1), "from 2 to 5"),
        (lambda: ds.spiral(classes=6), "from 2 to 5"),
        (lambda: ds.spiral(classes=2.0), "from 2 to 5"),
        (lambda: ds.circles(factor=1.0), "between 0 and 1"),
        (lambda: ds.circles(factor=0), "between 0 and 1"),
        (lambda: ds.blobs(centers=1), "at least 2"),
        (lambda: ds.blobs(std=-1), "std=1.0"),
        (lambda: ds.linear(features=0), "features=10"),
    ],
)
def test_other_bad_arguments_raise_with_a_hint(call, hint):
    with pytest.raises(ValueError, match=hint):
        call()


def test_module_exports_exactly_the_data_sets():
    assert sorted(ds.__all__) == sorted([f.__name__ for f in ALL] + ["linear_rule"])  # and linear's hidden rule
    for fn in ALL:
        assert fn.__doc__ and "\n" not in fn.__doc__.strip()
