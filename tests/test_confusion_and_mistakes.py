"""The errors a model makes: the confusion matrix and the worst samples, checked against counts and sorts by hand."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainlab as tl
from trainlab.confusion import row_shares


def digits_loop(**options):
    X, y = tl.datasets.digits(n=600, seed=0)
    options.setdefault("validation_split", 0.25)
    loop = tl.Loop(tl.models.mlp(64, [32], 10, seed=0), (X.flatten(1), y), "cross_entropy", lr=0.5, seed=0,
                   **options)
    loop.fit(epochs=2)
    return loop


def spiral_loop(**options):
    X, y = tl.datasets.spiral(n=300, classes=3, seed=0)
    options.setdefault("validation_split", 0.3)
    loop = tl.Loop(tl.models.mlp(2, [16, 16], 3, seed=0), (X, y), "cross_entropy", lr=0.3, seed=0, **options)
    loop.fit(epochs=3)
    return loop


def hand_count(model, X, y, classes):
    """Counted one sample at a time, the model in eval mode, without trainlab."""
    model.eval()
    counts = np.zeros((classes, classes), np.int64)
    with torch.no_grad():
        for x, target in zip(X, y):
            counts[int(target), int(model(x[None]).argmax(1))] += 1
    model.train()
    return counts


@pytest.mark.parametrize("make, classes", [(digits_loop, 10), (spiral_loop, 3)])
def test_the_confusion_matrix_equals_a_count_by_hand_on_the_validation_data(make, classes):
    loop = make()
    counts = tl.confusion(loop)
    X_val, y_val = loop.val_data
    assert counts.shape == (classes, classes) and counts.dtype == np.int64
    np.testing.assert_array_equal(counts, hand_count(loop.model, X_val, y_val, classes))
    assert counts.sum() == len(y_val)
    assert np.trace(counts) / counts.sum() == pytest.approx(loop.evaluate()["accuracy"])  # the diagonal: the right ones
    np.testing.assert_allclose(row_shares(counts).sum(1)[counts.sum(1) > 0], 1.0)


def test_without_validation_data_it_counts_the_training_data_and_data_can_be_given():
    loop = spiral_loop(validation_split=0.0)
    X, y = loop.train_data
    np.testing.assert_array_equal(tl.confusion(loop), hand_count(loop.model, X, y, 3))
    X_test, y_test = tl.datasets.spiral(n=90, classes=3, seed=7)
    given = tl.confusion(loop, (X_test.double().numpy(), y_test.int().numpy()))  # numpy, float64 and int32
    np.testing.assert_array_equal(given, hand_count(loop.model, X_test, y_test, 3))


def test_binary_cross_entropy_on_one_output_gets_two_classes():
    X, y = tl.datasets.moons(n=200, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 1, seed=0), (X, y.float()[:, None]), "bce", lr=0.5, validation_split=0.2)
    loop.fit(epochs=3)
    X_val, y_val = loop.val_data
    with torch.no_grad():
        predicted = (loop.model(X_val)[:, 0] > 0).long()
    hand = np.zeros((2, 2), np.int64)
    for t, p in zip(y_val[:, 0].long().tolist(), predicted.tolist()):
        hand[t, p] += 1
    np.testing.assert_array_equal(tl.confusion(loop), hand)


@pytest.mark.parametrize("loss, targets", [("mse", "float"), (nn.BCEWithLogitsLoss(), "multilabel")])
def test_a_confusion_matrix_is_refused_where_it_means_nothing(loss, targets):
    X = torch.randn(40, 3)
    y = X[:, :1].clone() if targets == "float" else (X > 0).float()
    loop = tl.Loop(nn.Linear(3, y.shape[1]), (X, y), loss)
    with pytest.raises(ValueError, match="a confusion matrix counts one predicted class"):
        tl.confusion(loop)


def test_top_losses_equal_a_sort_by_hand_of_each_samples_loss():
    loop = digits_loop()
    worst = tl.top_losses(loop, k=9)
    X_val, y_val = loop.val_data
    loop.model.eval()
    with torch.no_grad():
        outputs = loop.model(X_val)
    loop.model.train()
    losses = F.cross_entropy(outputs, y_val, reduction="none").double()
    hand = sorted(range(len(y_val)), key=lambda i: -losses[i].item())[:9]
    assert worst.which == "validation" and len(worst) == 9
    assert worst.indices.tolist() == hand
    np.testing.assert_allclose(worst.losses, losses[hand].numpy(), rtol=1e-12)
    assert np.all(np.diff(worst.losses) <= 0)  # highest first
    assert worst.targets.tolist() == y_val[hand].tolist()
    assert worst.predictions.tolist() == outputs[hand].argmax(1).tolist()
    assert torch.equal(worst.inputs, X_val[hand])


def test_top_losses_of_a_regression_and_of_a_loss_of_ones_own():
    X = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    y = X.sum(1, keepdim=True) ** 2
    loop = tl.Loop(nn.Linear(3, 1), (X, y), "mse", lr=0.01)
    loop.step()
    with torch.no_grad():
        losses = ((loop.model(X) - y) ** 2)[:, 0].double()
    worst = tl.top_losses(loop, k=5)
    assert worst.which == "training"
    assert worst.indices.tolist() == losses.argsort(descending=True)[:5].tolist()
    np.testing.assert_allclose(worst.losses, losses.sort(descending=True).values[:5].numpy(), rtol=1e-6)
    np.testing.assert_allclose(worst.targets, y[worst.indices].numpy())

    def penalised(outputs, targets):  # a plain function: called on one sample at a time
        logits, features = outputs
        return F.cross_entropy(logits, targets) + 1e-3 * features.pow(2).mean()

    class TwoOutputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Linear(3, 8), nn.Linear(8, 2)

        def forward(self, x):
            features = torch.relu(self.body(x))
            return self.head(features), features

    labels = (X[:, 0] > 0).long()
    loop = tl.Loop(TwoOutputs(), (X, labels), penalised, outputs=0, accuracy=True)
    worst = tl.top_losses(loop, k=50)
    with torch.no_grad():
        hand = [penalised(loop.model(X[i:i + 1]), labels[i:i + 1]).item() for i in range(50)]
    assert worst.indices.tolist() == sorted(range(50), key=lambda i: -hand[i])
    assert worst.predictions.tolist() == loop.model(X)[0].argmax(1)[worst.indices].tolist()


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "9"])
def test_top_losses_refuse_a_bad_k(k):
    loop = spiral_loop()
    with pytest.raises(ValueError, match="k must be a whole number of at least 1, like k=9"):
        tl.top_losses(loop, k=k)


def test_more_than_there_are_gives_all_of_them():
    loop = spiral_loop()
    assert len(tl.top_losses(loop, k=10_000)) == len(loop.val_data[1])
