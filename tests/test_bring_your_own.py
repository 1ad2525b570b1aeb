"""Bring your own model, round 3 (issue 26): silent paths closed, and common shapes no longer refused.

Each test failed on the code before issue 26. The zoo (tests/zoo/) holds a model for most items too,
checked there against a hand-written loop and through time travel.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import trainlab as tl


def moons(n: int = 48, seed: int = 0):
    return tl.datasets.moons(n=n, noise=0.2, seed=seed)


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def seeded(build, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# --- 1. ReduceLROnPlateau watches what the user says, in the mode that fits it ---------------------------

def plateau(mode: str = "min"):
    return lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, patience=0, factor=0.5)


def test_a_plateau_scheduler_in_max_mode_watching_a_loss_is_refused():
    with pytest.raises(ValueError, match="mode='max'.*val_loss.*mode='min'"):
        tl.Loop(tl.models.mlp(2, [8], 2), moons(), "cross_entropy", validation_split=0.25, scheduler=plateau("max"))


def test_a_plateau_scheduler_watches_validation_accuracy_when_asked():
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), moons(), "cross_entropy", lr=0.5, batch_size=12,
                   validation_split=0.25, scheduler=plateau("max"), scheduler_metric="val_accuracy")
    loop.fit(epochs=3)
    assert loop.scheduler.best == max(loop.history.history["val_accuracy"])
    with pytest.raises(ValueError, match="not recorded"):
        tl.Loop(tl.models.mlp(2, [8], 2), moons(), "cross_entropy", scheduler=plateau("max"),
                scheduler_metric="val_accuracy")  # no validation data


def test_a_per_step_plateau_scheduler_is_refused_when_built():
    with pytest.raises(ValueError, match="scheduler_interval='epoch'"):
        tl.Loop(tl.models.mlp(2, [8], 2), moons(), "cross_entropy", scheduler=plateau(), scheduler_interval="step")


# --- 2. the optimizer's own parameter groups ---------------------------------------------------------------

def adamw_groups(model: nn.Module, decay: float = 0.01) -> torch.optim.AdamW:
    """The usual recipe: weights decay, biases do not; the output layer learns 10x slower."""
    return torch.optim.AdamW([
        {"params": [model.hidden1.weight], "lr": 0.1, "weight_decay": decay},
        {"params": [model.hidden1.bias, model.output.bias], "lr": 0.1, "weight_decay": 0.0},
        {"params": [model.output.weight], "lr": 0.01, "weight_decay": decay}])


def test_lr_given_with_an_optimizer_object_keeps_its_groups_ratios():
    model = tl.models.mlp(2, [8], 2, seed=0)
    optimizer = adamw_groups(model)
    loop = tl.Loop(model, moons(), "cross_entropy", optimizer, lr=0.3)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.3, 0.3, 0.03], rel=1e-12)
    assert loop.lr == 0.3


def test_weight_decay_leaves_groups_built_without_it_at_zero():
    model = tl.models.mlp(2, [8], 2, seed=0)
    optimizer = adamw_groups(model)
    loop = tl.Loop(model, moons(), "cross_entropy", optimizer)
    assert loop.weight_decay == 0.01 and loop.weight_decay_groups == [0, 2]
    loop.weight_decay = 0.05
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0, 0.05]
    loop.weight_decay = 0.0
    loop.weight_decay = 0.02  # back from 0: still only the groups built with a decay
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.02, 0.0, 0.02]
    assert loop.history.changes[-1] == (0, "weight_decay", 0.02)


def test_the_dashboards_weight_decay_box_says_which_groups_it_moves():
    pytest.importorskip("ipywidgets")
    model = tl.models.mlp(2, [8], 2, seed=0)
    dash = tl.Dashboard(tl.Loop(model, moons(), "cross_entropy", adamw_groups(model)))
    try:
        assert "groups 0, 2 of 3" in dash.controls.weight_decay.tooltip
    finally:
        dash.close()


# --- 3. sparse gradients, and several optimizers stepped together -----------------------------------------

class SparseBag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 4, sparse=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embedding(ids).mean(1))


def token_data(n: int = 40):
    ids = torch.randint(0, 20, (n, 5), generator=torch.Generator().manual_seed(1))
    return ids, (ids.sum(1) % 2)


def test_sparse_gradients_are_measured_and_clipped():
    model = seeded(SparseBag)
    loop = tl.Loop(model, token_data(), "cross_entropy", "sgd", lr=0.5, batch_size=8, clip_grad_norm=0.01)
    loop.forward()
    loop.loss()
    norms = loop.backward()
    grad = model.embedding.weight.grad
    assert grad.is_sparse
    assert norms["embedding.weight"] == pytest.approx(grad.coalesce().values().norm().item(), rel=1e-6)
    log = loop.update()
    assert log["status"] == "updated" and log["clipped_grad_norm"] == pytest.approx(0.01)
    total = math.sqrt(sum(v.norm().item() ** 2 for v in (grad.coalesce().values(), model.fc.weight.grad,
                                                          model.fc.bias.grad)))
    assert total == pytest.approx(0.01, rel=1e-4)


def test_several_optimizers_step_together_and_travel_in_time(tmp_path):
    def build():
        model = seeded(SparseBag)
        optimizers = [torch.optim.SparseAdam(list(model.embedding.parameters()), lr=0.05),
                      torch.optim.Adam(list(model.fc.parameters()), lr=0.05)]
        return tl.Loop(model, token_data(), "cross_entropy", optimizers, batch_size=8)

    loop = build()
    loop.step()
    snapshot = loop.snapshot()
    loop.save(tmp_path / "two.pt")
    losses = [loop.step()["loss"] for _ in range(6)]
    after = weights(loop.model)
    loop.restore(snapshot)
    assert [loop.step()["loss"] for _ in range(6)] == losses and same(weights(loop.model), after)
    other = build()
    other.load(tmp_path / "two.pt")
    assert [other.step()["loss"] for _ in range(6)] == losses and same(weights(other.model), after)
    loop.lr = 0.01
    assert [g["lr"] for g in loop.optimizer.param_groups] == [0.01, 0.01]


# --- 4. random layers that are not Dropout run on the loop's stream ------------------------------------

@pytest.mark.parametrize("build, data", [
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.FractionalMaxPool2d(2, output_size=4), nn.Flatten(),
                           nn.Linear(32, 2)),
     (torch.randn(32, 1, 6, 6, generator=torch.Generator().manual_seed(0)), torch.arange(32) % 2)),
    (lambda: nn.GRU(3, 2, num_layers=2, dropout=0.5),  # the whole model: outputs (seq, batch, 2), h
     None),
], ids=["fractional_max_pool", "gru_dropout"])
def test_random_torch_layers_run_on_the_loops_stream(build, data):
    if data is None:  # a GRU as the whole model: its output is a tuple, the predictions its first part
        X = torch.randn(32, 4, 3, generator=torch.Generator().manual_seed(0))
        data = (X, torch.randn(32, 4, 2, generator=torch.Generator().manual_seed(1)))
        loss, options = (lambda out, y: F.mse_loss(out[0], y)), {"outputs": 0}
    else:
        loss, options = "cross_entropy", {}
    loop = tl.Loop(seeded(build), data, loss, "sgd", lr=0.1, batch_size=8, shuffle=False, **options)
    loop.step()
    snapshot = loop.snapshot()
    torch.manual_seed(123)  # torch's own stream must not matter
    losses = [loop.step()["loss"] for _ in range(3)]
    loop.restore(snapshot)
    torch.manual_seed(456)
    assert [loop.step()["loss"] for _ in range(3)] == losses
    assert loop.rewind(2) == 2
    torch.manual_seed(789)
    assert [loop.step()["loss"] for _ in range(2)] == losses[1:]


# --- 5. validation and evaluate() on the loop's stream ---------------------------------------------------

class NoisyEncoder(nn.Module):
    """Samples in eval mode too (a VAE's encoder does): the loss depends on the random numbers drawn."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean(x) + 0.5 * torch.randn(len(x), 2)


def test_evaluation_of_a_model_that_samples_is_reproducible():
    loop = tl.Loop(seeded(NoisyEncoder), moons(), "cross_entropy", validation_split=0.25, batch_size=12)
    loop.step()
    outside = torch.get_rng_state()
    first, second = loop.evaluate(), loop.evaluate()
    assert first == second  # a copy of the loop's stream each time
    assert torch.equal(torch.get_rng_state(), outside)  # torch's own stream untouched
    loop.fit(epochs=2)
    val_losses = list(loop.history.history["val_loss"])
    again = tl.Loop(seeded(NoisyEncoder), moons(), "cross_entropy", validation_split=0.25, batch_size=12)
    torch.manual_seed(99)
    again.fit(epochs=2)
    assert again.history.history["val_loss"] == val_losses
    loop.rewind(loop.state.step - 1)
    loop.fit(epochs=1)
    assert loop.history.history["val_loss"] == val_losses[:1]


# --- 6. non-persistent buffers changed in forward are captured ------------------------------------------

class Counting(nn.Module):
    """Counts the batches it has seen in a buffer left out of its state_dict (persistent=False)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.register_buffer("seen", torch.zeros(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen += 1
        return self.fc(x) * (1 + 0.01 * self.seen)


def test_non_persistent_buffers_travel_in_time(tmp_path):
    loop = tl.Loop(seeded(Counting), moons(), "cross_entropy", lr=0.1, batch_size=8)
    loop.step()
    snapshot = loop.snapshot()
    loop.save(tmp_path / "counting.pt")
    losses = [loop.step()["loss"] for _ in range(3)]
    assert loop.model.seen.item() == 4
    loop.restore(snapshot)
    assert loop.model.seen.item() == 1
    assert [loop.step()["loss"] for _ in range(3)] == losses
    loop.rewind(2)
    assert loop.model.seen.item() == 2
    other = tl.Loop(seeded(Counting), moons(), "cross_entropy", lr=0.1, batch_size=8)
    other.load(tmp_path / "counting.pt")
    assert other.model.seen.item() == 1 and [other.step()["loss"] for _ in range(3)] == losses


# --- 7. an error inside loss() puts the batch back --------------------------------------------------------

def test_an_error_in_the_loss_puts_batchnorm_statistics_back():
    armed = []

    def flaky(outputs, targets):
        if armed:
            armed.clear()
            raise RuntimeError("the loss failed once")
        return F.cross_entropy(outputs, targets)

    def build(loss):
        model = seeded(lambda: nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)))
        return tl.Loop(model, moons(), loss, lr=0.1, batch_size=8)

    loop, twin = build(flaky), build(F.cross_entropy)
    armed.append(True)
    loop.forward()
    with pytest.raises(RuntimeError, match="failed once"):
        loop.loss()
    assert loop.next_stage == "forward"
    assert same(weights(loop.model), weights(twin.model))  # running statistics as before the batch
    assert loop.step()["loss"] == twin.step()["loss"]
    assert same(weights(loop.model), weights(twin.model))


# --- 8. LBFGS gets a closure ---------------------------------------------------------------------------

def test_lbfgs_trains_like_a_hand_loop_with_a_closure():
    X, y = tl.datasets.linear(n=32, seed=0)
    build = lambda: nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 1))  # noqa: E731
    loop = tl.Loop(seeded(build), (X, y), "mse", "lbfgs", lr=0.5, batch_size=32, shuffle=False)
    losses = [loop.step()["loss"] for _ in range(3)]
    model = seeded(build)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5)
    hand = []
    for _ in range(3):
        def closure():
            optimizer.zero_grad()
            loss = F.mse_loss(model(X), y)
            loss.backward()
            return loss
        hand.append(optimizer.step(closure).item())
    assert losses == hand and same(weights(loop.model), weights(model))
    loop.rewind(2)
    assert [loop.step()["loss"] for _ in range(2)] == hand[1:]
    with pytest.raises(ValueError, match="clipping"):
        loop.clip_grad_norm = 1.0
    switched = tl.Loop(seeded(build), (X, y), "mse", "adam", batch_size=16, weight_decay=0.01)
    switched.step()
    switched.set_optimizer("lbfgs")  # LBFGS has no weight decay to carry over
    switched.step()
    assert switched.rewind(1) == 1 and switched.optimizer_name == "lbfgs"


# --- 9. per-token and per-pixel classification ------------------------------------------------------------

class Tagger(nn.Module):
    """Token ids (n, T) -> class scores per token (n, classes, T), as cross-entropy wants them."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 6)
        self.fc = nn.Linear(6, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embedding(ids)).transpose(1, 2)


def tagged(n: int = 24, T: int = 5):
    ids = torch.randint(1, 10, (n, T), generator=torch.Generator().manual_seed(2))
    tags = ids % 3
    tags[:, -2:] = -100  # padding: no label
    return ids, tags


def test_per_token_cross_entropy_counts_accuracy_per_token_leaving_out_ignore_index():
    ids, tags = tagged()
    loop = tl.Loop(seeded(Tagger), (ids, tags), "cross_entropy", lr=0.5, batch_size=8, shuffle=False)
    assert loop.classification
    log = loop.step()
    model = seeded(Tagger)
    with torch.no_grad():
        predicted = model(ids[:8]).argmax(1)
    counted = tags[:8] != -100
    assert log["accuracy"] == pytest.approx(((predicted == tags[:8]) & counted).sum().item() / counted.sum().item())
    result = loop.evaluate((ids, tags))
    assert 0 <= result["accuracy"] <= 1
    assert loop.accuracy_unit == "token"
    pytest.importorskip("ipywidgets")
    from trainlab.widgets.stage_view import stage_html

    loop.forward()
    assert "Each token" in stage_html(loop)  # the stage view says what accuracy counts


def test_per_pixel_segmentation_is_accepted():
    X = torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    masks = (X[:, 0] > 0).long()  # (n, H, W)
    loop = tl.Loop(seeded(lambda: nn.Conv2d(1, 2, 3, padding=1)), (X, masks), "cross_entropy", batch_size=8)
    log = loop.step()
    assert 0 <= log["accuracy"] <= 1


def test_scores_laid_out_per_token_last_get_a_hint_that_works():
    ids, tags = tagged()

    class Last(Tagger):
        def forward(self, ids):
            return super().forward(ids).transpose(1, 2)  # (n, T, classes)

    with pytest.raises(ValueError, match=r"transpose\(1, -1\)"):
        tl.Loop(seeded(Last), (ids, tags), "cross_entropy")


# --- 10. several targets --------------------------------------------------------------------------------

class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(2, 8)
        self.classes = nn.Linear(8, 2)
        self.value = nn.Linear(8, 1)

    def forward(self, x):
        h = torch.tanh(self.body(x))
        return self.classes(h), self.value(h).squeeze(-1)


def multitask(outputs, targets):
    (logits, value), (label, target) = outputs, targets
    return F.cross_entropy(logits, label) + F.mse_loss(value, target)


@pytest.mark.parametrize("layout", ["tuple", "dict"])
def test_several_targets_reach_the_loss_as_they_are(layout):
    X, y = moons()
    radius = X.norm(dim=1)
    targets = (y, radius) if layout == "tuple" else {"label": y, "radius": radius}
    loss = multitask if layout == "tuple" else (lambda out, t: multitask(out, (t["label"], t["radius"])))
    loop = tl.Loop(seeded(TwoHeads), (X, targets), loss, lr=0.1, batch_size=12, outputs=0,
                   accuracy=0 if layout == "tuple" else "label", validation_split=0.25)
    log = loop.step()
    assert 0 <= log["accuracy"] <= 1
    loop.fit(epochs=1)
    assert "val_accuracy" in loop.history.history
    assert set(loop.evaluate((X, targets))) == {"loss", "accuracy"}
    with pytest.raises(ValueError, match="accuracy=0"):
        tl.Loop(seeded(TwoHeads), (X, (y, radius)), multitask, outputs=0, accuracy=True)


# --- 11. an own loss function that squeezes correctly -------------------------------------------------------

def test_an_own_loss_that_squeezes_is_accepted_and_one_that_broadcasts_is_warned_about():
    X, y = tl.datasets.linear(n=32, seed=0)
    y = y.view(-1)  # (n,) against outputs (n, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tl.Loop(nn.Linear(10, 1), (X, y), lambda out, t: F.mse_loss(out.squeeze(-1), t)).step()
    with pytest.warns(UserWarning, match="broadcast"):
        tl.Loop(nn.Linear(10, 1), (X, y), lambda out, t: ((out - t) ** 2).mean())
    with pytest.raises(ValueError, match=r"y\.view\(-1, 1\)"):
        tl.Loop(nn.Linear(10, 1), (X, y), "mse")


# --- 12. drop_last for tensors; never a one-sample batch with BatchNorm --------------------------------------

def bn_model():
    return seeded(lambda: nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)))


def test_drop_last_for_tensors():
    loop = tl.Loop(tl.models.mlp(2, [8], 2), moons(65), "cross_entropy", batch_size=16, drop_last=True)
    loop.fit(epochs=2)
    assert loop.history.steps["batch_size"].tolist() == [16] * 8


def test_batchnorm_never_gets_a_one_sample_batch():
    loop = tl.Loop(bn_model(), moons(65), "cross_entropy", batch_size=16)
    loop.fit(epochs=2)
    assert loop.history.steps["batch_size"].tolist() == [16, 16, 16, 17] * 2
    live = tl.Loop(bn_model(), moons(64), "cross_entropy", batch_size=16)
    live.step()
    live.batch_size = 47  # 16, then 47 would leave 1: the last sample joins this batch
    live.step()
    assert live.state.epoch == 1 and live.history.steps["batch_size"].tolist() == [16, 48]
    with pytest.raises(ValueError, match="at least 2"):
        live.batch_size = 1


# --- 13. gradient accumulation -------------------------------------------------------------------------------

def test_accumulate_makes_one_update_from_k_micro_batches():
    X, y = moons(40)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", lr=0.3, batch_size=8, shuffle=False,
                   accumulate=2)
    for micro in (1, 2):
        loop.forward()
        assert loop.open_batch.micro_batch == micro and loop.open_batch.micro_batches == 2
        loop.loss()
        loop.backward()
    assert loop.next_stage == "update"
    log = loop.update()
    assert loop.state.step == 1 and log["batch_size"] == 16
    loop.run_epoch()  # 40 samples: updates of 16, 16, then the epoch's last micro-batch of 8 alone
    assert loop.state.step == 3 and loop.history.steps["batch_size"].tolist() == [16, 16, 8]
    model = tl.models.mlp(2, [8], 2, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    batches = [(X[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]
    for i, (x, t) in enumerate(batches):
        (F.cross_entropy(model(x), t) / 2).backward()
        if (i + 1) % 2 == 0 or i == len(batches) - 1:
            optimizer.step()
            optimizer.zero_grad()
    assert same(weights(loop.model), weights(model))


# --- 14. bf16 autocast, and clipping by value ---------------------------------------------------------------

def test_bf16_autocast_and_clip_grad_value_match_the_usual_hand_loop():
    X, y = moons(32)
    loop = tl.Loop(tl.models.mlp(2, [16], 2, seed=0), (X, y), "cross_entropy", lr=0.2, batch_size=8,
                   shuffle=False, precision="bf16", clip_grad_value=0.05)
    losses = [loop.step()["loss"] for _ in range(4)]
    model = tl.models.mlp(2, [16], 2, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    hand = []
    for i in range(0, 32, 8):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(X[i:i + 8]), y[i:i + 8])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_value_(model.parameters(), 0.05)
        optimizer.step()
        hand.append(loss.item())
    assert losses == hand and same(weights(loop.model), weights(model))
    loop.clip_grad_value = None
    assert loop.history.changes[-1] == (4, "clip_grad_value", None)
    with pytest.raises(ValueError, match="precision"):
        tl.Loop(tl.models.mlp(2, [8], 2), (X, y), "cross_entropy", precision="half")


def far_targets():
    X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    return X, 30 + X.sum(1, keepdim=True)


def fp16_hand_loop(X, y, model, steps, batch_size, k=1, clip=None):
    """The usual float16 hand loop: autocast, GradScaler, unscale_ before clipping; the scale before each update."""
    optimizer, scaler = torch.optim.SGD(model.parameters(), lr=0.001), torch.amp.GradScaler("cpu")
    losses, scales, i = [], [], 0
    while len(losses) < steps:
        update = 0.0
        for _ in range(k):
            with torch.autocast("cpu", dtype=torch.float16):
                loss = F.mse_loss(model(X[i:i + batch_size]), y[i:i + batch_size])
            scaler.scale(loss / k if k > 1 else loss).backward()
            update += loss.item() / k
            i = (i + batch_size) % len(X)
        scaler.unscale_(optimizer)
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        scales.append(scaler.get_scale())
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        losses.append(update)
    return losses, scales


@pytest.mark.parametrize("k, clip", [(1, None), (2, 5.0)])
def test_fp16_with_a_grad_scaler_matches_the_usual_hand_loop_overflows_included(k, clip):
    # Targets near 30: the scaled gradients overflow float16 at first, so the scaler skips steps and halves its scale.
    X, y = far_targets()
    loop = tl.Loop(tl.models.mlp(4, [16], 1, seed=0), (X, y), "mse", lr=0.001, batch_size=8, shuffle=False,
                   precision="fp16", accumulate=k, clip_grad_norm=clip)
    losses, scales = [], []
    for _ in range(12):
        scales.append(loop.loss_scale)
        losses.append(loop.step()["loss"])
    model = tl.models.mlp(4, [16], 1, seed=0)
    hand_losses, hand_scales = fp16_hand_loop(X, y, model, 12, 8, k, clip)
    assert scales == hand_scales and min(scales) < 65536.0  # it overflowed, and the scale came down as torch's does
    assert losses == pytest.approx(hand_losses, rel=1e-6) and same(weights(loop.model), weights(model))
    assert all(math.isfinite(v) for v in loop.last_grad_norms.values())


def test_fp16_time_travel_brings_the_loss_scale_back_exactly(tmp_path):
    X, y = far_targets()
    loop = tl.Loop(tl.models.mlp(4, [16], 1, seed=0), (X, y), "mse", lr=0.001, batch_size=8, precision="fp16")
    loop.fit(epochs=1)
    snapshot, path = loop.snapshot(), tmp_path / "fp16.pt"
    loop.save(path)
    scale = loop.loss_scale
    loop.fit(epochs=2)
    after, after_scale = weights(loop.model), loop.loss_scale
    loop.restore(snapshot)
    assert loop.loss_scale == scale
    loop.fit(epochs=2)
    assert same(weights(loop.model), after) and loop.loss_scale == after_scale
    loop.rewind(5)
    loop.fit(epochs=1)
    assert same(weights(loop.model), after) and loop.loss_scale == after_scale
    other = tl.Loop(tl.models.mlp(4, [16], 1, seed=1), (X, y), "mse", lr=0.001, batch_size=8, precision="fp16")
    other.load(path)
    assert other.loss_scale == scale
    other.fit(epochs=2)
    assert same(weights(other.model), after) and other.loss_scale == after_scale
    # A batch dropped after its backward (gradients unscaled) is tried again with a scaler that has nothing half done.
    loop.forward(), loop.loss(), loop.backward()
    loop.rewind(1)
    other.rewind(1)
    for _ in range(3):
        assert loop.step()["loss"] == other.step()["loss"] and loop.loss_scale == other.loss_scale
    assert same(weights(loop.model), weights(other.model))
    # Rewind replays steps the scaler skipped (their gradient norms NaN) and checks them against the history.
    fresh = tl.Loop(tl.models.mlp(4, [16], 1, seed=0), (X, y), "mse", lr=0.001, batch_size=8, precision="fp16")
    for _ in range(8):
        fresh.step()
    eighth = weights(fresh.model)
    assert math.isnan(fresh.history.steps["grad_norm"][0])  # an overflow
    fresh.rewind(7)
    for _ in range(7):
        fresh.step()
    assert same(weights(fresh.model), eighth) and fresh.loss_scale == 1024.0
    assert tl.Loop(tl.models.mlp(4, [8], 1), (X, y), "mse").loss_scale is None


class FailsOnce(torch.optim.SGD):
    """SGD whose next step raises once (``fail_next``): an update that fails midway."""

    fail_next = False

    def step(self, closure=None):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("this step failed")
        return super().step(closure)


def test_fp16_an_update_after_the_loop_was_put_back_steps_exactly_once_unscaled():
    X, y = far_targets()
    loops = []
    for _ in range(3):
        model = tl.models.mlp(4, [16], 1, seed=0)
        loops.append(tl.Loop(model, (X, y), "mse", FailsOnce(model.parameters(), lr=0.001), batch_size=8,
                             precision="fp16"))
    for loop in loops:
        for _ in range(8):
            loop.step()
        loop.forward(), loop.loss(), loop.backward()  # the gradients are unscaled now
    plain, replayed, failed = loops
    replayed.update_ratios(recent=False)  # replays the last update, then puts the loop back as it was
    failed.optimizer.fail_next = True
    with pytest.raises(RuntimeError, match="this step failed"):
        failed.update()
    assert failed.next_stage == "update"
    for loop in loops:
        loop.update()
        loop.step()
    assert same(weights(replayed.model), weights(plain.model)) and same(weights(failed.model), weights(plain.model))
    assert replayed.loss_scale == failed.loss_scale == plain.loss_scale


def test_fp16_refuses_an_optimizer_that_reevaluates_the_loss():
    X, y = moons(32)
    model = tl.models.mlp(2, [8], 2)
    with pytest.raises(ValueError, match="fp16"):
        tl.Loop(model, (X, y), "cross_entropy", torch.optim.LBFGS(model.parameters()), precision="fp16")
    with pytest.raises(ValueError, match="'fp16'"):
        tl.Loop(model, (X, y), "cross_entropy", precision="float16")
    loop = tl.Loop(model, (X, y), "cross_entropy", precision="fp16")
    with pytest.raises(ValueError, match="gradient scaling"):
        tl.check_step(lambda model, optimizer, loss_fn, inputs, targets: None, loop)
    assert loop.state.step == 0 and loop.next_stage == "forward"


# --- 15. smaller: every optimizer by name, Datasets of dicts, augmentation in a plain Dataset ---------------

@pytest.mark.parametrize("name, options", [("adagrad", {"lr_decay": 0.01}), ("nadam", {"momentum_decay": 0.004}),
                                           ("radam", {}), ("adamax", {})])
def test_every_torch_optimizer_by_name_with_its_own_options(name, options):
    loop = tl.Loop(tl.models.mlp(2, [8], 2), moons(), "cross_entropy", name, optimizer_options=options)
    assert type(loop.optimizer).__name__.lower() == name
    loop.step()


class Named(Dataset):
    def __init__(self, augment: bool = False) -> None:
        self.X, self.y = moons()
        self.augment = augment

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        x = self.X[i] + (0.1 * torch.randn(2) if self.augment else 0)
        return {"x": x}, self.y[i]


class NamedInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)


def test_a_plain_dataset_of_named_inputs_is_read_as_a_dataloader_of_it_is():
    loop = tl.Loop(NamedInput(), Named(), "cross_entropy", batch_size=12, shuffle=False)
    loop.forward()
    assert torch.equal(loop.batch[0]["x"], Named().X[:12])


def test_a_plain_dataset_with_random_augmentation_warns_it_is_read_once():
    with pytest.warns(UserWarning, match="DataLoader"):
        tl.Loop(NamedInput(), Named(augment=True), "cross_entropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tl.Loop(NamedInput(), Named(), "cross_entropy")


class StandInCuda:
    """torch.cuda's generator calls, on a CPU generator standing in for a GPU's (no GPU on this machine)."""

    def __init__(self) -> None:
        self.generator = torch.Generator()

    def get_rng_state(self, index: int) -> torch.Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor, index: int) -> None:
        self.generator.set_state(state)

    def manual_seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)


def test_the_loops_stream_covers_a_gpus_generator():
    from trainlab.batching import EpochSampler
    from trainlab.state import CudaStream, RunState

    cuda = StandInCuda()
    cuda.manual_seed(999)
    outside = cuda.get_rng_state(0)
    run = RunState(torch.Generator().manual_seed(0).get_state(), 8)
    run.sampler = EpochSampler(8, False, 0)
    run.cuda = CudaStream(0, seed=0, api=cuda)
    assert torch.equal(cuda.get_rng_state(0), outside)  # building it left the device's generator alone

    def dropout_on_the_gpu() -> torch.Tensor:
        return torch.rand(3, generator=cuda.generator)

    first = run.with_rng(dropout_on_the_gpu)
    assert torch.equal(first, torch.rand(3, generator=torch.Generator().manual_seed(0)))  # as torch.manual_seed(0)
    assert torch.equal(cuda.get_rng_state(0), outside)  # the device's own stream put back
    place = run.capture()
    assert "cuda_rng" in place
    second = run.with_rng(dropout_on_the_gpu)
    run.go_to(place)  # what rewind and a failed stage do
    assert torch.equal(run.with_rng(dropout_on_the_gpu), second)
    copy = run.on_copy_of_rng(dropout_on_the_gpu)  # evaluate(): the run's stream stays
    assert torch.equal(run.with_rng(dropout_on_the_gpu), copy)
