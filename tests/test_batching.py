"""The loop owns batching: every training sample exactly once per epoch, whatever the batch sizes."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import trainlab as tl


def indexed_loop(n, batch_size=7, shuffle=True, seed=0, validation_split=0.0):
    """A loop whose inputs carry their own sample index in column 0."""
    X = torch.stack([torch.arange(n, dtype=torch.float32), torch.zeros(n)], dim=1)
    y = torch.zeros(n, 1)
    return tl.Loop(torch.nn.Linear(2, 1), (X, y), "mse", lr=1e-6, batch_size=batch_size, shuffle=shuffle,
                   seed=seed, validation_split=validation_split)


def seen_indices(loop):
    return loop.batch[0][:, 0].long().tolist()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), sizes=st.lists(st.integers(1, 70), min_size=1, max_size=40),
       shuffle=st.booleans())
def test_each_sample_once_per_epoch_under_random_batch_size_changes(n, sizes, shuffle):
    loop = indexed_loop(n, shuffle=shuffle)
    epochs: dict[int, list[int]] = {}
    for size in sizes:
        loop.batch_size = size
        epoch = loop.state.epoch
        loop.forward()
        assert len(loop.batch[0]) == min(size, n - loop.epoch_progress[0])
        epochs.setdefault(epoch, []).extend(seen_indices(loop))
        loop.step()
    for epoch, indices in epochs.items():
        complete = epoch < loop.state.epoch
        assert len(indices) == len(set(indices)), "a sample was used twice in one epoch"
        if complete:
            assert sorted(indices) == list(range(n)), "an epoch ended without using every sample"


def test_shuffled_epochs_draw_different_orders_and_unshuffled_keep_data_order():
    shuffled = indexed_loop(20, batch_size=20)
    orders = []
    for _ in range(3):
        shuffled.forward()
        orders.append(seen_indices(shuffled))
        shuffled.step()
    assert orders[0] != orders[1] != orders[2]
    plain = indexed_loop(20, batch_size=8, shuffle=False)
    plain.forward()
    assert seen_indices(plain) == list(range(8))


def test_the_epoch_ends_with_the_update_of_its_last_batch():
    loop = indexed_loop(10, batch_size=4)
    loop.step(); loop.step()
    assert loop.state.epoch == 0
    loop.forward(); loop.loss(); loop.backward()
    assert len(loop.batch[0]) == 2 and loop.state.epoch == 0  # the last batch is the smaller rest
    loop.update()
    assert loop.state.epoch == 1 and loop.history.epoch == [0]


def test_validation_split_is_seeded_held_out_and_disjoint():
    a = indexed_loop(50, validation_split=0.2, seed=3)
    b = indexed_loop(50, validation_split=0.2, seed=3)
    c = indexed_loop(50, validation_split=0.2, seed=4)
    assert len(a.val_indices) == 10 and len(a.train_indices) == 40
    assert torch.equal(a.val_indices, b.val_indices) and not torch.equal(a.val_indices, c.val_indices)
    assert set(a.val_indices.tolist()).isdisjoint(a.train_indices.tolist())
    assert sorted(a.val_indices.tolist() + a.train_indices.tolist()) == list(range(50))
    # The training data really is the held-in part: no validation sample is ever trained on.
    a.fit(epochs=1)
    assert a.n_train == 40
    held_out = set(a.val_indices.tolist())
    assert held_out.isdisjoint(a.train_data[0][:, 0].long().tolist())
    assert sorted(a.val_data[0][:, 0].long().tolist()) == sorted(held_out)


def test_fit_counts_a_partly_done_epoch_as_the_first():
    loop = indexed_loop(30, batch_size=10)
    loop.step()
    loop.fit(epochs=2)
    assert loop.state.epoch == 2 and loop.state.step == 6
    loop.fit(epochs=1)
    assert loop.state.epoch == 3 and loop.state.step == 9


def test_run_epoch_finishes_the_current_epoch_and_returns_its_log():
    loop = indexed_loop(30, batch_size=10, validation_split=0.2)
    loop.step()
    log = loop.run_epoch()
    assert loop.state.epoch == 1 and log["epoch"] == 0
    assert set(log) == {"epoch", "loss", "val_loss"}
