"""A loop's progress: its counters (``State``), its place in the run (``RunState``) and its open batch.

Which stage is due follows from what the open batch has filled in: no outputs yet ->
forward; outputs but no loss -> loss; a loss but no gradient norms -> backward; all three
-> update. With no batch open, forward is due.

``RunState`` is everything that moves in time besides the weights and the optimizer (Ignite's
``State``): the loop's random stream, the data's position, the counters, the epoch's running sums
and the batch size. ``capture()`` gives it as a ``Place`` (a checkpoint's layout), ``apply()``
puts one back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor, nn

from trainlab.batching import EpochSampler
from trainlab.checkpoint import Place
from trainlab.history import HistoryMark
from trainlab.metrics import clip_grad_norm, total_norm

if TYPE_CHECKING:
    from trainlab.data import LoopData

__all__ = ["State", "RunState", "CudaStream", "Batch", "BatchStart", "OpenBatch"]


@dataclass
class State:
    """Counters of a loop's progress."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed updates
    skipped: int = 0  # batches skipped because of non-finite values (on_nonfinite="skip_batch")


@dataclass(eq=False)
class RunState:
    """What moves in time besides the weights: random stream, data position, counters, epoch sums, batch size."""

    rng: Tensor  # the loop's own random stream (dropout, augmentation); replaced, never written in place
    batch_size: int
    sampler: EpochSampler = None  # type: ignore[assignment]  # set once the data's sampler is made
    counters: State = field(default_factory=State)
    epoch_sums: list = field(default_factory=lambda: [0.0, 0, 0.0])  # loss * samples, samples, correct
    cuda: CudaStream | None = None  # device="cuda": the GPU generator's part of the loop's stream

    def capture(self) -> Place:
        """Where the run is now, as a checkpoint records it (the rng is shared: it is never written in place)."""
        counters = self.counters
        place: Place = {"rng": self.rng, "sampler": self.sampler.state(),
                        "counters": {"epoch": counters.epoch, "step": counters.step, "skipped": counters.skipped,
                                     "epoch_sums": list(self.epoch_sums)},
                        "batch_size": self.batch_size}
        if self.cuda is not None:
            place["cuda_rng"] = self.cuda.state
        return place

    def apply(self, place: Place) -> None:
        """Go back to ``place``: its position, sums and random stream, its counters and batch size."""
        self.go_to(place)
        counters = place["counters"]
        self.counters = State(int(counters["epoch"]), int(counters["step"]), int(counters["skipped"]))
        self.batch_size = int(place["batch_size"])

    def go_to(self, place: Place) -> None:
        """Only the data's position, the epoch's sums and the random stream of ``place`` (a batch put back)."""
        self.sampler.load_state({**place["sampler"], "position": int(place["sampler"]["position"])})
        sums = place["counters"]["epoch_sums"]
        self.epoch_sums = [float(sums[0]), int(sums[1]), float(sums[2])]
        self.rng = place["rng"].clone()
        if self.cuda is not None and "cuda_rng" in place:
            self.cuda.state = place["cuda_rng"].clone()

    def start_epoch(self) -> None:
        """Draw the next epoch's order and start its sums afresh."""
        self.sampler.start_epoch()
        self.epoch_sums = [0.0, 0, 0.0]

    def progress(self, batch: Batch | None) -> tuple[int, int]:
        """(samples of this epoch already trained on, samples per epoch); an open batch counts from its start."""
        sampler = self.sampler
        if batch is not None:
            return batch.start, sampler.n
        return (0 if sampler.epoch_done else sampler.position), sampler.n

    def take_batch(self, data: LoopData, size: int | None = None) -> tuple[int, Any, Any]:
        """The next batch of this epoch (of ``size`` samples, or the batch size): (its start in the epoch's order,
        inputs, targets)."""
        sampler = self.sampler
        start, stop = sampler.take(size or self.batch_size)
        if data.fetch is None:
            return (start, *sampler.rows(*data.train, start, stop))
        # Fetched afresh, with the loop's random stream (augmentation is random, and replays exactly).
        return (start, *self.with_rng(data.fetched, sampler.indices(start, stop)))

    def count_update(self, batch: Batch) -> None:
        """An update was made with ``batch`` (and the micro-batches before it): it counts in the epoch's sums and the
        step counter."""
        sums = self.epoch_sums
        loss_sum, size, correct = batch.totals()
        sums[0] += loss_sum
        sums[1] += size
        sums[2] += correct
        self.counters.step += 1

    def end_epoch(self, accuracy: bool) -> tuple[int, dict[str, float]]:
        """Count the epoch as ended: returns its index and its sample-weighted mean loss (and accuracy)."""
        loss_sum, samples, correct = self.epoch_sums
        log = {"loss": loss_sum / samples if samples else float("nan")}
        if accuracy:
            log["accuracy"] = correct / samples if samples else float("nan")
        index = self.counters.epoch
        self.counters.epoch += 1
        return index, log

    def with_rng(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with the loop's random stream as torch's (dropout, augmentation, a sampler)."""
        if self.cuda is not None:  # on a GPU, dropout draws from the device's generator
            return self.cuda.around(self._with_cpu_rng, fn, *args)
        return self._with_cpu_rng(fn, *args)

    def _with_cpu_rng(self, fn: Callable[..., Any], *args: Any) -> Any:
        outside = torch.get_rng_state()
        torch.set_rng_state(self.rng)
        try:
            return fn(*args)
        finally:
            self.rng = torch.get_rng_state()
            torch.set_rng_state(outside)

    def on_copy_of_rng(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with a copy of the loop's random stream as torch's: reproducible; the run's stream stays."""
        kept, kept_cuda = self.rng, self.cuda.state if self.cuda is not None else None
        try:
            return self.with_rng(fn, *args)
        finally:
            self.rng = kept
            if self.cuda is not None:
                self.cuda.state = kept_cuda


class CudaStream:
    """The loop's random stream on a GPU: the device generator's state, swapped in with the CPU's.

    It starts as ``torch.manual_seed(seed)`` leaves the device (``torch.manual_seed`` seeds every device),
    so a hand loop that seeds torch once meets the same dropout masks. ``api`` is ``torch.cuda`` (a test
    gives a stand-in, to check the routing on a machine without a GPU).
    """

    def __init__(self, index: int, seed: int, api: Any = None) -> None:
        self.index, self.api = index, api if api is not None else torch.cuda
        outside = self.api.get_rng_state(index)
        self.api.manual_seed(seed)  # the current device's generator, as torch.manual_seed seeds it
        self.state: Tensor = self.api.get_rng_state(index)
        self.api.set_rng_state(outside, index)

    def around(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with this state as the device generator's; the state it leaves is kept."""
        outside = self.api.get_rng_state(self.index)
        self.api.set_rng_state(self.state, self.index)
        try:
            return fn(*args)
        finally:
            self.state = self.api.get_rng_state(self.index)
            self.api.set_rng_state(outside, self.index)


@dataclass(eq=False)
class BatchStart:
    """The loop as a batch found it, minus what only an update changes (weights, optimizer state).

    Cheap to take at every batch: it is what a failed stage puts back, what a snapshot taken
    mid-batch records, and where a replay to this batch stops.
    """

    place: Place
    buffers: dict[str, Tensor]  # copies of the model's buffers: BatchNorm's statistics move in forward
    history: HistoryMark

    @property
    def step(self) -> int:
        """Completed updates when the batch opened."""
        return self.place["counters"]["step"]

    @property
    def skipped(self) -> int:
        """Batches skipped (non-finite) when the batch opened."""
        return self.place["counters"]["skipped"]


@dataclass(eq=False)
class Batch:
    """One batch from the moment forward() draws it until update() (or a skip) closes it."""

    inputs: Any  # what the model is called with: a tensor (or a tuple / dict of tensors)
    targets: Any  # a tensor (or several: a tuple / dict, passed to the loss as they are)
    start: int  # the position of its first sample in this epoch's order (of the update's first micro-batch)
    opened: BatchStart  # the loop as it was when the batch opened: what a failed stage puts back
    size: int  # the number of samples, len(targets) (counted once: a tensor's len() is not free)
    # accumulate=k: each micro-batch is a Batch; the update's first one opened it (``opened``, ``start``).
    micro: int = 0  # which micro-batch of the update: 0 ... k - 1
    last: bool = True  # the update's last micro-batch: update() is due after its backward
    carried: tuple = (0.0, 0, 0.0)  # the earlier micro-batches': loss * samples, samples, correct
    take_size: int = 0  # samples per micro-batch, fixed for the update (its first micro-batch's batch size)
    outputs: Any = None  # forward(): what the model returned
    forward_rng: Tensor | None = None  # forward(): the loop's random state it drew from (dropout's masks)
    forward_cuda_rng: Tensor | None = None  # forward() on a GPU: the device generator's part of it
    loss: Tensor | None = None  # loss(): 0-d, attached to the graph
    loss_value: float = 0.0  # loss() as a float (the step's one sync for the loss)
    grad_norms: dict[str, float] | None = None  # backward(): {parameter name: gradient norm}
    correct: float = 0.0  # backward(): right predictions (classification)
    clipped_norm: float | None = None  # update(): the gradients' total norm after clipping
    tally: tuple[Tensor, Tensor] | None = None  # backward() in fit: (scores, labels) counted later (tally.py)

    @property
    def due(self) -> str:
        """The stage that is due: "forward", "loss", "backward" or "update"."""
        if self.outputs is None:
            return "forward"
        if self.loss is None:
            return "loss"
        if self.grad_norms is None:
            return "backward"
        return "update" if self.last else "forward"  # accumulate=k: the update's next micro-batch

    @property
    def finished(self) -> bool:
        """A micro-batch whose backward ran, and more micro-batches follow before the update."""
        return not self.last and self.grad_norms is not None

    def totals(self) -> tuple[float, int, float]:
        """Over the update's micro-batches up to this one: loss * samples, samples, right predictions."""
        loss_sum, samples, correct = self.carried
        return loss_sum + self.loss_value * self.size, samples + self.size, correct + self.correct

    def log(self, counters: State, lr: float, grad_norm: float, clipped: float | None,
            accuracy: bool) -> dict[str, Any]:
        """The log of the update this batch makes (Keras-style: flat numbers); ``clipped``: None unless clipping."""
        size, loss, correct = self.size, self.loss_value, self.correct
        if self.micro:  # accumulate=k: over the update's micro-batches, sample-weighted
            loss_sum, size, correct = self.totals()
            loss = loss_sum / size
        log: dict[str, Any] = {"step": counters.step + 1, "epoch": counters.epoch, "status": "updated",
                               "loss": loss, "lr": lr, "batch_size": size, "grad_norm": grad_norm}
        if clipped is not None:
            log["clipped_grad_norm"] = clipped
        if accuracy:
            log["accuracy"] = correct / size
        return log

    def clip_gradients(self, params: list[nn.Parameter], clip: float | None, grad_norm: float,
                       clip_value: float | None = None) -> float:
        """Clip the gradients: each at most ``clip_value`` in size, then their total norm at most ``clip``;
        returns the norm after.

        torch's own clip_grad_value_ and clip_grad_norm_, so a hand loop using them gets the same numbers.
        Once per batch: an update that failed and is called again must not scale them twice.
        """
        if self.clipped_norm is None:
            self.clipped_norm = grad_norm
            if clip_value is not None:
                nn.utils.clip_grad_value_(params, clip_value)
                self.clipped_norm = grad_norm = total_norm(params)  # one sync, only when clipping by value
            if clip is not None:
                clip_grad_norm(params, clip)
                self.clipped_norm = min(grad_norm, clip)
        return self.clipped_norm


@dataclass(frozen=True, eq=False)  # eq=False: tensors do not compare to one bool
class OpenBatch:
    """A read-only look at the open batch (``loop.open_batch``): what its stages have filled in so far.

    Example: after ``loop.forward()``, ``loop.open_batch.outputs`` is what the model returned.
    """

    inputs: Any  # what the model is called with
    targets: Tensor
    next_stage: str  # the stage that is due
    outputs: Any  # forward()'s result, or None
    loss: Tensor | None  # loss()'s result, or None
    grad_norms: dict[str, float] | None  # backward()'s result (a copy), or None
    forward_rng: Tensor | None  # the random state forward drew from (dropout's masks); None for a model without randomness
    micro_batch: int = 1  # accumulate=k: which micro-batch of the update is open, 1 ... k
    micro_batches: int = 1  # k
    forward_cuda_rng: Tensor | None = None  # on a GPU: the device generator's state forward drew from

    @classmethod
    def of(cls, batch: Batch, micro_batches: int = 1) -> "OpenBatch":
        """The view of ``batch`` as it is now (``micro_batches``: the loop's accumulate)."""
        norms = dict(batch.grad_norms) if batch.grad_norms is not None else None
        return cls(batch.inputs, batch.targets, batch.due, batch.outputs, batch.loss, norms, batch.forward_rng,
                   batch.micro + 1, micro_batches, batch.forward_cuda_rng)
