"""Activations over time: every layer's mean, spread, dead units and histogram, on a probe batch every
k steps (fastai's ``ActivationStats`` and its "colorful dimension").

    acts = tl.ActivationStats(loop, every=10)   # attaches: records as the loop trains
    loop.fit(epochs=5)
    acts.layers                                 # ["hidden1", "act1", ..., "relu after conv1", ...]
    acts.dead["act1"]                           # per record: the share of act1's units that are dead
    acts.histograms["act1"], acts.ranges["act1"]   # (records, bins) counts over (records, 2) value ranges

A "layer" is every module without submodules (Linear, Conv2d, ReLU, LSTM...) and every activation
function called in a ``forward`` (``F.relu(self.fc1(x))`` is "relu after fc1"), found by watching
torch's functions while the probe batch runs (``TorchFunctionMode``). A unit (one output value of
a layer) is **dead** when it is at most 0 for every sample of the probe batch: for ReLU, exactly 0,
so no gradient flows through it and it no longer learns; for LeakyReLU, GELU, ELU, SiLU, it sits on
their flat, nearly gradient-free side for every sample. Only rectifiers get a dead share (tanh and
sigmoid units do not die that way: their share is NaN, ``None`` in ``activation_stats``).

The probe batch is the first ``samples`` training samples, run in eval mode without gradients,
torch's random state put back: the run goes on exactly as without it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from trainlab.batching import call_model
from trainlab.looking import quietly
from trainlab.arguments import whole_number
from trainlab.recording import Recorder

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["ActivationStats", "ProbeResult", "probe_activations", "RECTIFIERS"]

#: Activations whose units can die: at most 0 for every sample, on their flat side.
RECTIFIERS = frozenset({"relu", "relu6", "leaky_relu", "rrelu", "prelu", "gelu", "elu", "selu", "celu", "silu",
                        "mish", "hardswish"})


def _activation_functions() -> dict[Callable[..., Any], str]:
    """torch's activation functions (functional, torch.*, and Tensor methods) -> the activation's name."""
    names = ["relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "rrelu", "prelu", "gelu", "elu", "elu_", "selu",
             "celu", "silu", "mish", "hardswish", "hardtanh", "tanh", "sigmoid", "softplus", "softsign", "hardsigmoid",
             "logsigmoid", "tanhshrink"]
    found: dict[Callable[..., Any], str] = {}
    for name in names:
        for home in (F, torch, Tensor):
            fn = getattr(home, name, None)
            if fn is not None:
                found[fn] = name.rstrip("_")
    return found


_FUNCTIONS = _activation_functions()
_STATS = 5  # mean, std, dead share, lowest, highest; then the histogram's bins


def _kind(func: Any, args: tuple, kwargs: dict | None) -> str | None:
    """The activation ``func`` computes, or None; ReLU6 is hardtanh from 0 (nn.ReLU6 calls it so)."""
    kind = _FUNCTIONS.get(func)
    if kind == "hardtanh":
        low = (kwargs or {}).get("min_val", args[1] if len(args) > 1 else -1.0)
        return "relu6" if low == 0 else kind
    return kind


class _Probe(TorchFunctionMode):
    """Watches one forward pass: each leaf module's output and each activation function's, copied at once (an
    in-place ReLU later must not change what a Linear's output looked like) and summarised after the pass
    (while it runs, every torch call goes through this mode: the summaries would pay for that)."""

    def __init__(self, model: nn.Module, bins: int) -> None:
        super().__init__()
        self.bins = bins
        self.names: list[str] = []
        self.kinds: list[str | None] = []
        self.outputs: list[Tensor] = []  # copies, summarised once the pass is over
        self._running: list[nn.Module] = []  # the modules whose forward is under way, innermost last
        self._leaves = {id(m): name for name, m in model.named_modules() if name and not any(m.children())}
        self._calls: dict[str, int] = {}
        self._pending: dict[int, tuple[Tensor, str]] = {}  # a leaf's activation call, matched to its output
        self._last = ""  # the last leaf that finished: names an activation called in a forward after it
        self.handles = [h for m in model.modules() for h in (
            m.register_forward_pre_hook(self._enter), m.register_forward_hook(self._leave))]

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        kind = _kind(func, args, kwargs)
        if kind is not None and isinstance(out, Tensor) and out.is_floating_point():
            inner = self._running[-1] if self._running else None
            if inner is not None and id(inner) in self._leaves:
                self._pending[id(inner)] = (out, kind)  # nn.ReLU and the like: the module's own row says it
            else:
                self._add(f"{kind} after {self._last}" if self._last else f"{kind} of the inputs", kind, out)
        return out

    def _enter(self, module: nn.Module, args: Any) -> None:
        self._running.append(module)

    def _leave(self, module: nn.Module, args: Any, output: Any) -> None:
        self._running.pop()
        name = self._leaves.get(id(module))
        if name is None:
            return
        tensor = output[0] if isinstance(output, (tuple, list)) and output else output  # an LSTM: (output, state)
        pending = self._pending.pop(id(module), None)
        if isinstance(tensor, Tensor) and tensor.is_floating_point():
            self._add(name, pending[1] if pending is not None and pending[0] is tensor else None, tensor)
        self._last = name

    def _add(self, name: str, kind: str | None, output: Tensor) -> None:
        calls = self._calls[name] = self._calls.get(name, 0) + 1
        self.names.append(name if calls == 1 else f"{name} (call {calls})")
        self.kinds.append(kind)
        self.outputs.append(output.detach().clone())


def _summary(output: Tensor, rectifier: bool, bins: int) -> Tensor:
    """mean, std, dead share (NaN unless a rectifier), lowest and highest value, then a histogram between them."""
    values = output.float()
    flat = values.reshape(-1)
    if not bool(torch.isfinite(flat).all()):  # rare: a blown-up layer's finite values only (a copy)
        flat = flat[torch.isfinite(flat)]
    if not len(flat):
        return torch.full((_STATS + bins,), math.nan)
    dead = ((values.reshape(len(values), -1) <= 0).all(0).float().mean() if rectifier and values.dim()
            else torch.tensor(math.nan))
    std = flat.std() if len(flat) > 1 else torch.zeros(())
    low, high = flat.min(), flat.max()
    histogram = torch.histc(flat, bins=bins)  # over [low, high]; all values equal: over [v-1, v+1], as here
    same = (low == high).to(flat.dtype)
    low, high = low - same, high + same
    return torch.cat([torch.stack([flat.mean(), std, dead.to(flat.dtype), low, high]), histogram]).cpu()


class ProbeResult:
    """One probe: each layer's name, its activation (or None), and its row of numbers (``_STATS`` + bins)."""

    def __init__(self, names: list[str], kinds: list[str | None], table: np.ndarray) -> None:
        self.names, self.kinds, self.table = names, kinds, table


def probe_activations(loop: Loop, inputs: Any, bins: int = 40) -> ProbeResult:
    """Run ``inputs`` through the model quietly and summarise every layer's output (see the module's docstring)."""
    with quietly(loop):
        probe = _Probe(loop.model, bins)
        try:
            with probe:
                call_model(loop.model, inputs)
        finally:
            for handle in probe.handles:
                handle.remove()
        rows = [_summary(output, kind in RECTIFIERS, bins) for output, kind in zip(probe.outputs, probe.kinds)]
    table = torch.stack(rows).double().numpy() if rows else np.empty((0, _STATS + bins))
    return ProbeResult(probe.names, probe.kinds, table)


class ActivationStats(Recorder):
    """Every layer's activation mean, spread, dead share and histogram on a probe batch, every ``every`` steps.

    ``samples``: the probe batch's size (the first training samples); ``bins``: the histogram's;
    ``max_rows``: records kept at most (older ones thinned); ``attach=False``: only ``record()`` records.
    """

    def __init__(self, loop: Loop, every: int = 10, samples: int = 256, bins: int = 40, max_rows: int = 500,
                 attach: bool = True) -> None:
        self.samples = whole_number(samples, "samples", 1, "256")
        self.bins = whole_number(bins, "bins", 2, "40")
        self.layers: list[str] = []  # found at the first record, in the order the forward pass runs them
        self.kinds: dict[str, str | None] = {}  # each layer's activation function ("relu", ...), or None
        self._inputs: Any = None
        super().__init__(loop, every, max_rows, attach)

    def measure(self) -> dict[str, np.ndarray]:
        if self._inputs is None:
            self._inputs = self.loop.first_train_samples(self.samples)[0]
        probe = probe_activations(self.loop, self._inputs, self.bins)
        if not self.layers:
            self.layers, self.kinds = list(probe.names), dict(zip(probe.names, probe.kinds))
        row = {name: i for i, name in enumerate(probe.names)}
        table = np.full((len(self.layers), _STATS + self.bins), np.nan)  # a layer not run this time: NaN
        for j, name in enumerate(self.layers):
            if name in row:
                table[j] = probe.table[row[name]]
        return {"stats": table}

    def _column(self, start: int, stop: int | None = None) -> dict[str, np.ndarray]:
        table = self.rows.column("stats")
        if not len(table):
            return {name: np.empty((0,) if stop is None else (0, stop - start)) for name in self.layers}
        return {name: table[:, j, start] if stop is None else table[:, j, start:stop]
                for j, name in enumerate(self.layers)}

    @property
    def mean(self) -> dict[str, np.ndarray]:
        """{layer: (records,) mean activation}."""
        return self._column(0)

    @property
    def std(self) -> dict[str, np.ndarray]:
        """{layer: (records,) standard deviation of the activations}."""
        return self._column(1)

    @property
    def dead(self) -> dict[str, np.ndarray]:
        """{layer: (records,) share of dead units} (NaN for layers that are not rectifiers)."""
        return self._column(2)

    @property
    def ranges(self) -> dict[str, np.ndarray]:
        """{layer: (records, 2) lowest and highest value}: the span of each record's histogram."""
        return self._column(3, 5)

    @property
    def histograms(self) -> dict[str, np.ndarray]:
        """{layer: (records, bins) counts of values}, each record's bins evenly over its ``ranges`` row."""
        return self._column(_STATS, _STATS + self.bins)
