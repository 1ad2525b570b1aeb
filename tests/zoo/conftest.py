"""The zoo's fixtures: one torch thread (exact comparisons), and ``case``, parametrized over the zoo."""

from __future__ import annotations

import pytest
import torch

from zoo_cases import ZOO, Case


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread, as trainlab's loops use (threads=1): the hand loops then sum in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=ZOO, ids=[case.name for case in ZOO])
def case(request) -> Case:
    """Each model of the zoo in turn."""
    return request.param
