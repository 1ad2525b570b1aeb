"""Events are declared names (tl.Event); handles stop listening with remove() or at a with block's end."""

import pytest

import trainlab as tl
from loops import moons_loop


def test_every_event_is_declared_once_with_a_line_of_documentation():
    assert tl.EVENTS == tuple(event.value for event in tl.Event)
    assert len(set(tl.EVENTS)) == len(tl.EVENTS) == 14
    assert all(f"{when}_{stage}" in tl.EVENTS for stage in tl.STAGES for when in ("before", "after"))
    source = open(tl.events.__file__).read()
    for event in tl.Event:  # each member is followed by its docstring line
        assert f'{event.name} = "{event.value}"\n    """' in source


def test_an_event_or_its_name_reach_the_same_handlers():
    loop = moons_loop(n=64, batch_size=16)
    seen = []
    loop.on(tl.Event.AFTER_UPDATE, lambda lp: seen.append("event"))
    loop.on("after_update", lambda lp: seen.append("name"))
    loop.step()
    assert seen == ["event", "name"]
    assert tl.Event.AFTER_UPDATE == "after_update" and f"{tl.Event.AFTER_UPDATE}" == "after_update"


def test_a_handle_in_a_with_block_listens_only_inside_it():
    loop = moons_loop(n=64, batch_size=16)
    steps = []
    with loop.on("after_update", lambda lp: steps.append(lp.state.step)) as handle:
        loop.step()
    loop.step()
    assert steps == [1]
    handle.remove()  # removing again is harmless


def test_an_unknown_event_is_refused_with_the_names_to_choose_from():
    loop = moons_loop(n=64)
    for bad in ("after_updte", 3, None):
        with pytest.raises(ValueError, match="unknown event .*after_update"):
            loop.on(bad, print)
