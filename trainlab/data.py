"""What a loop trains and validates on: tensors on its device, or a DataLoader drawn through, checked once.

``LoopData`` takes what a learner passes (a pair of tensors or arrays, a Dataset, a
DataLoader), works out how accuracy is counted for it, checks the targets against the
loss, puts the tensors on the device in a dtype the model runs on, and splits off the
validation part. With a DataLoader only two samples are read here (for the checks); the
batches are fetched later, one at a time (see ``batching.LoaderFetch``).
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from trainlab.batching import (EpochSampler, LoaderFetch, as_tensors, call_model, kept_generators, like,
                               loader_generators, map_tensors, n_rows, rows, split_validation)
from trainlab.checks import fails_on_one_sample, in_model_dtype, predict_batch, probe
from trainlab.metrics import accuracy_kind, eval_mode, evaluate, pick
from trainlab.options import LOSSES, check_targets

__all__ = ["LoopData"]


class LoopData:
    """The training split (or a DataLoader's fetcher), the validation data, and how to bring more data in line."""

    def __init__(self, data: Any, model: nn.Module, loss_fn: Callable[..., Tensor], loss_name: str,
                 accuracy: bool | int | str | None, part: int | str | None, device: torch.device, shuffle: bool | None,
                 validation_split: float, val_data: Any, seed: int, drop_last: bool | None = None) -> None:
        if val_data is not None and validation_split:
            raise ValueError("give either validation_split or val_data, not both")
        self.model, self.loss_fn, self.loss_name, self.part, self.device = model, loss_fn, loss_name, part, device
        self.fetch = LoaderFetch(data, shuffle) if isinstance(data, DataLoader) else None
        if self.fetch is not None and validation_split:
            raise ValueError("validation_split needs the data in memory; with a DataLoader, give "
                             "val_data= (another DataLoader, or (X, y))")
        self.drop_last = _drop_last(drop_last, self.fetch)
        # The (n, 1)-vs-(n,) shape check refuses with the loop's (and torch's) losses, and warns with one's own.
        self.named_loss = loss_name in LOSSES or isinstance(loss_fn, nn.modules.loss._Loss)
        self.context: Callable[[], Any] = nullcontext  # what the model and loss run in (autocast: Loop sets it)
        inputs, targets = self._first_look(data)
        self.target_part = _target_part(targets, accuracy)  # which of several targets accuracy reads
        if self.target_part is not None or isinstance(targets, Tensor):
            self.accuracy_kind = _accuracy_kind(loss_fn, pick(targets, self.target_part),
                                                accuracy if isinstance(accuracy, bool) or accuracy is None else True)
        else:
            self.accuracy_kind = None  # several targets: accuracy reads the one accuracy= names
        targets = self._checked(targets, "data")
        self.accuracy_unit = _accuracy_unit(self.accuracy_kind, pick(targets, self.target_part))
        inputs, targets = self.on_device(inputs, targets)
        self.cast = in_model_dtype(model, inputs)  # numpy's float64 -> the model's float32, if it must
        inputs, targets = self.converted(inputs, targets)
        n = self.fetch.n if self.fetch is not None else len(targets)
        self.train_indices, self.val_indices = split_validation(n, validation_split, seed)
        if validation_split:
            self.train = rows(inputs, self.train_indices), rows(targets, self.train_indices)
            self.val = rows(inputs, self.val_indices), rows(targets, self.val_indices)
        else:
            self.train = inputs, targets  # with a DataLoader: two samples, for shapes and types
            self.val = self.prepared(val_data, "val_data") if val_data is not None else None
        probe(model, loss_fn, self.accuracy_kind, *self.train, part=part, target_part=self.target_part,
              named_loss=self.named_loss)
        self.n = self.fetch.n if self.fetch is not None else n_rows(self.train[1])  # samples in an epoch
        self._collected: tuple[Any, Tensor] | None = None

    def _first_look(self, data: Any) -> tuple[Any, Tensor]:
        if self.fetch is None:
            return as_tensors(data, "data")
        with torch.random.fork_rng(devices=[]), kept_generators(loader_generators(self.fetch.loader)):
            return self.fetch.fetch(torch.arange(min(2, self.fetch.n)))  # looking at two samples leaves no trace

    def sampler(self, shuffle: bool | None, loader_shuffle: bool | None, seed: int,
                with_loop_rng: Callable[..., Any]) -> EpochSampler:
        """The epoch order: the loop's own (a seeded shuffle, or the data's order), or a DataLoader sampler's."""
        if shuffle is None:  # as the DataLoader was made; True for tensors (and for a sampler of its own)
            shuffle = loader_shuffle is not False
        fetch = self.fetch
        if fetch is None:
            sampler = EpochSampler(self.n, shuffle, seed, drop_last=self.drop_last)
        else:
            sampler = EpochSampler(self.n, shuffle, seed, draw=lambda: with_loop_rng(fetch.draw_order),
                                   drop_last=fetch.drop_last, generators=loader_generators(fetch.loader))
        sampler.no_single = fails_on_one_sample(self.model, *self.train)
        return sampler

    def on_device(self, inputs: Any, targets: Any) -> tuple[Any, Any]:
        """The tensors on the loop's device."""
        return map_tensors(inputs, lambda t: t.to(self.device)), map_tensors(targets, lambda t: t.to(self.device))

    def converted(self, inputs: Any, targets: Any) -> tuple[Any, Any]:
        """Floats in the model's dtype, where the data's (float64 from numpy, say) would not run."""
        cast = self.cast
        if cast is None:
            return inputs, targets
        return (map_tensors(inputs, lambda t: t.to(cast) if t.is_floating_point() else t),
                map_tensors(targets, lambda t: t.to(cast) if t.is_floating_point() else t))

    def fetched(self, indices: Tensor) -> tuple[Any, Tensor]:
        """A DataLoader's batch of these samples, on the device (call it with the loop's random stream)."""
        return self.converted(*self.on_device(*self.fetch.fetch(indices)))

    @property
    def whole_train(self) -> tuple[Any, Tensor]:
        """The training split; from a DataLoader, all its batches, collected when first asked."""
        if self.fetch is None:
            return self.train
        if self._collected is None:  # through the loader, leaving no trace on any random stream
            self._collected = self.converted(*self.on_device(*as_tensors(self.fetch.loader, "data")))
        return self._collected

    def first_train(self, n: int) -> tuple[Any, Tensor]:
        """The first ``n`` training samples; from a DataLoader only those are fetched, leaving no trace
        on any random stream (its augmentation draws some), as ``whole_train`` does."""
        if self.fetch is None or self._collected is not None:
            inputs, targets = self.whole_train
            return map_tensors(inputs, lambda x: x[:n]), map_tensors(targets, lambda t: t[:n])
        sampler = self.fetch.sampler  # a sampler of the loader's own (a subset, weights) picks the samples
        with torch.random.fork_rng(devices=[]), kept_generators(loader_generators(self.fetch.loader)):
            first = range(min(n, self.fetch.n)) if sampler is None else itertools.islice(iter(sampler), n)
            return self.fetched(torch.tensor(list(first), dtype=torch.int64))

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """One sample's input shape, like (2,) or (1, 8, 8); None for a model taking several inputs."""
        inputs = self.train[0]
        return tuple(inputs.shape[1:]) if isinstance(inputs, Tensor) else None

    def scores(self, data: Any = None) -> dict[str, float]:
        """The model's loss (and accuracy) on ``data``, or on the validation data; in eval mode, without gradients.

        Run it with the loop's random stream as torch's (a model that samples in eval mode, a VAE)."""
        if data is None and self.val is None:
            raise ValueError("this loop has no validation data: build it with validation_split=0.2 "
                             "or val_data=(X, y), or pass data: loop.evaluate((X_test, y_test))")
        inputs, targets = self.val if data is None else self.prepared(data, "evaluate's data")
        return evaluate(self.model, self.loss_fn, self.accuracy_kind, inputs, targets, self.part, self.target_part,
                        self.context)

    def predictions(self, inputs: Any) -> Tensor:
        """The model's predictions for ``inputs`` (the ``outputs`` part), in eval mode, without gradients."""
        x = predict_batch(inputs, self.train[0], self.device)
        with eval_mode(self.model), torch.no_grad(), self.context():
            return pick(call_model(self.model, x), self.part)

    def _checked(self, targets: Any, what: str) -> Any:
        """The targets, checked against the loss (one tensor; several go to the loss as they are)."""
        if not isinstance(targets, Tensor):
            return targets
        return check_targets(self.loss_name, self.accuracy_kind, targets, what)

    def prepared(self, data: Any, what: str) -> tuple[Any, Any]:
        """Validation or test data as tensors like the training data's, checked like it."""
        inputs, targets = as_tensors(data, what)
        targets = self._checked(targets, what)
        train_x, train_y = self.train
        # On the device, converted like the training data was (numpy's float64, say).
        if isinstance(train_y, Tensor) != isinstance(targets, Tensor):
            raise ValueError(f"{what}: its targets are not laid out like the training targets")
        inputs, targets = self.on_device(like(inputs, train_x, what), targets)
        if isinstance(targets, Tensor) and targets.is_floating_point() and train_y.is_floating_point():
            targets = targets.to(train_y.dtype)
        probe(self.model, self.loss_fn, self.accuracy_kind, inputs, targets, part=self.part,  # labels, shapes
              target_part=self.target_part, named_loss=self.named_loss, warn=False)
        return inputs, targets


def _accuracy_unit(kind: str | None, targets: Any) -> str | None:
    """What accuracy counts: "sample", "token" (a class per token or pixel), "label" (multi-label), or None."""
    if kind is None:
        return None
    if kind.startswith("multilabel"):
        return "label"
    per_token = isinstance(targets, Tensor) and targets.dim() > (2 if targets.is_floating_point() else 1)
    return "token" if kind == "multiclass" and per_token else "sample"


def _drop_last(drop_last: Any, fetch: LoaderFetch | None) -> bool:
    """Whether a last batch shorter than the batch size is dropped: given for tensors, the DataLoader's own."""
    if drop_last is not None and not isinstance(drop_last, bool):
        raise ValueError(f"drop_last must be True, False or None (the default); got {drop_last!r}")
    if fetch is None:
        return bool(drop_last)
    if drop_last is not None and drop_last != fetch.drop_last:
        raise ValueError(f"the DataLoader was made with drop_last={fetch.drop_last}: leave drop_last unset, or make "
                         f"the DataLoader with drop_last={drop_last}")
    return fetch.drop_last


def _target_part(targets: Any, accuracy: Any) -> int | str | None:
    """Which of several targets accuracy reads (``accuracy=0`` or ``accuracy="label"``); None for one target."""
    if isinstance(accuracy, bool) or accuracy is None:
        if accuracy is True and not isinstance(targets, Tensor):
            example = "accuracy='label'" if isinstance(targets, dict) else "accuracy=0"
            raise ValueError(f"the data has several targets: say which one accuracy reads ({example}), or "
                             "accuracy=False")
        return None
    if isinstance(targets, Tensor):
        raise ValueError(f"accuracy must be True, False or None (the default); got {accuracy!r} (a name or "
                         "number picks one of several targets, and the data has one target tensor)")
    try:
        chosen = pick(targets, accuracy)
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"accuracy={accuracy!r} names no target; the targets are "
                         f"{list(targets) if isinstance(targets, dict) else f'{len(targets)} tensors'}") from None
    if not isinstance(chosen, Tensor):
        raise ValueError(f"accuracy={accuracy!r} picks a {type(chosen).__name__}, not a tensor of targets")
    return accuracy


def _accuracy_kind(loss_fn: Any, targets: Tensor, accuracy: bool | None) -> str | None:
    """How accuracy is counted: by the loss; for a loss function of one's own with accuracy=True, by the targets."""
    if accuracy is False:
        return None
    kind = accuracy_kind(loss_fn, targets)
    if accuracy is True and kind is None:
        if isinstance(loss_fn, nn.modules.loss._Loss) or targets.is_floating_point() or targets.dim() != 1:
            raise ValueError("accuracy=True needs a classification loss (cross_entropy or bce), or class "
                             "labels as targets (int64, shape (n,)) for a loss function of your own")
        return "multiclass"
    return kind
