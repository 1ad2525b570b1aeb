"""tl.Distributions: weights and gradients as percentiles every k steps, equal to torch.quantile, in bounded memory."""

import numpy as np
import pytest
import torch

import trainlab as tl
from trainlab.distributions import PERCENTILES

Q = torch.tensor(PERCENTILES, dtype=torch.float32) / 100


def moons_loop(**options):
    X, y = tl.datasets.moons(n=128, noise=0.2, seed=0)
    return tl.Loop(tl.models.mlp(2, [16, 8], 2, seed=0), (X, y), "cross_entropy", lr=0.3, batch_size=16, seed=0,
                   **options)


def test_the_percentiles_equal_torch_quantile_at_every_recorded_step():
    loop = moons_loop()
    by_hand = {}

    def copy(loop):  # what the parameters and their gradients were at each recorded step
        if loop.state.step % 3 == 0:
            by_hand[loop.state.step] = {name: (p.detach().clone(), p.grad.clone())
                                        for name, p in loop.model.named_parameters()}

    loop.on("after_update", copy)
    dist = tl.Distributions(loop, every=3)
    loop.fit(epochs=2)  # 16 steps
    assert dist.steps.tolist() == [3, 6, 9, 12, 15] == sorted(by_hand)
    assert dist.names == loop.param_names
    for row, step in enumerate(dist.steps):
        for name, (weight, grad) in by_hand[step].items():
            np.testing.assert_array_equal(dist.weights[name][row], torch.quantile(weight.reshape(-1), Q).numpy())
            np.testing.assert_array_equal(dist.grads[name][row], torch.quantile(grad.reshape(-1), Q).numpy())


def test_record_measures_now_and_gradients_are_nan_before_the_first_backward():
    loop = moons_loop()
    dist = tl.Distributions(loop, attach=False)
    dist.record()
    assert dist.steps.tolist() == [0]
    assert np.isnan(dist.grads["hidden1.weight"]).all()
    np.testing.assert_array_equal(dist.weights["output.bias"][0],
                                  torch.quantile(loop.model.output.bias.detach(), Q).numpy())
    loop.fit(epochs=1)
    assert len(dist) == 1  # not attached: nothing recorded while training


def test_memory_stays_bounded_over_100_000_steps():
    """Recording every 10th of 100,000 steps (10,000 records): at most max_rows kept, the arrays stop growing."""
    loop = moons_loop()
    loop.step()
    dist = tl.Distributions(loop, every=10, max_rows=200, attach=False)
    sizes = []
    for step in range(10, 100_001, 10):
        dist.record(step=step)
        if step % 10_000 == 0:
            sizes.append(dist.rows.nbytes)
    steps = dist.steps
    assert len(dist) <= 200 and dist.rows.thinnings > 10
    assert len(set(sizes)) == 1  # allocated once the table was full, never more
    assert steps[-1] == 100_000 and np.all(np.diff(steps) > 0)
    assert steps[-100:].tolist() == list(range(100_000 - 990, 100_001, 10))  # the latest half whole
    assert steps[0] < 10_000  # and the whole run's story, thinned: the early steps are still there
    assert dist.weights["hidden1.weight"].shape == (len(dist), len(PERCENTILES))


def test_a_rewind_drops_the_records_of_the_steps_it_undoes():
    loop = moons_loop()
    dist = tl.Distributions(loop, every=2)
    for _ in range(10):
        loop.step()
    loop.rewind(5)
    assert dist.steps.tolist() == [2, 4]
    loop.step()
    loop.step()
    assert dist.steps.tolist() == [2, 4, 6]
    loop.reset()
    assert len(dist) == 0


def test_a_detached_recorder_costs_the_loop_nothing():
    loop = moons_loop()
    handlers = {name: list(fns) for name, fns in loop.events._handlers.items()}
    dist = tl.Distributions(loop, every=1)
    assert dist.attached
    dist.detach()
    assert {name: list(fns) for name, fns in loop.events._handlers.items()} == handlers
    loop.step()
    assert len(dist) == 0 and not dist.attached


@pytest.mark.parametrize("option, value, message", [("every", 0, "every must be a whole number of at least 1"),
                                                     ("every", 1.5, "every must be a whole number"),
                                                     ("max_rows", 4, "max_rows must be a whole number of at least 8")])
def test_bad_options_are_refused(option, value, message):
    with pytest.raises(ValueError, match=message):
        tl.Distributions(moons_loop(), **{option: value})
