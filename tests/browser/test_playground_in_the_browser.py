"""The playground's controls in real JupyterLab and Voila: change the data, the noise and the network while
playing, drag the timeline back, press Share and open the link in a second page: the same run, the same step."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from lab_page import button, set_slider, status_text, step_count, wait_until
from test_lab import assert_no_console_errors, open_notebook, wait_idle

ROOT = Path(__file__).resolve().parents[2]


def workshop_copy(output_dir: Path, name: str) -> str:
    """Notebook 04, copied under test-output/ (Share writes its file next to the notebook, never into the repository)."""
    folder = output_dir / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "04_live_lab.ipynb", folder / "04_live_lab.ipynb")
    return str((folder / "04_live_lab.ipynb").relative_to(ROOT))


def dropdown(page, label: str):
    return page.locator(".widget-dropdown", has=page.locator(".widget-label", has_text=label)).first.locator("select")


def loss_shown(page) -> str:
    return re.search(r"loss (\S+)", status_text(page)).group(1)


def play_and_change(page) -> None:
    """While playing: another data set, more noise, one more hidden layer; each lands (a ghost) and it plays on."""
    dropdown(page, "speed").select_option(label="100 steps/s")  # a pace to watch each change land at
    button(page, "Play").click()
    wait_until(lambda: "playing" in status_text(page), 15, "playing")
    plus = page.locator("button.widget-button", has_text=re.compile(r"^\s*\+\s*$")).first
    for change, ghost in ((lambda: dropdown(page, "data set").select_option("circles"), "before dataset circles"),
                          (lambda: set_slider(page, "noise", "0.3"), "before noise 0.3"),
                          (lambda: plus.click(), "before hidden [32, 32, 32]")):
        change()
        wait_until(lambda: dropdown(page, "branch").locator("option", has_text=ghost).count(), 20,
                   f"the ghost {ghost!r}")
        wait_until(lambda: button(page, "Pause").is_visible(), 20, "playing on")
    button(page, "Pause").click()
    wait_until(lambda: button(page, "Play").is_visible() and "paused" in status_text(page), 15, "the pause")
    wait_until(lambda: step_count(page) == (time.sleep(0.5), step_count(page))[1], 15, "the step to settle")


def travel_and_share(page, output_dir: Path, shot: str) -> tuple[str, int, str]:
    """Drag the timeline back, press Share; returns the link, the step and the loss shown."""
    target = step_count(page) // 2
    set_slider(page, "step", str(target))
    wait_until(lambda: step_count(page) == target, 20, f"the timeline to reach step {target}")
    loss = loss_shown(page)
    button(page, "Share").click()
    link = page.locator("a.trainlab-share-link").first
    wait_until(lambda: link.count() and link.is_visible(), 15, "the Share link")
    page.screenshot(path=str(output_dir / f"{shot}.png"))
    return link.get_attribute("href"), target, loss


def same_run_in_a_second_page(page, url: str, step: int, loss: str, output_dir: Path, shot: str) -> None:
    second = page.context.new_page()
    second.console_log, second.traffic = page.console_log, page.traffic
    second.goto(url)
    wait_until(lambda: button(second, "Forward").is_visible(), 120, "the shared run's dashboard")
    wait_until(lambda: step_count(second) == step, 60, f"the shared run at step {step}")
    assert loss_shown(second) == loss  # the same weights gave the same loss
    assert dropdown(second, "data set").input_value() == "circles"
    second.screenshot(path=str(output_dir / f"{shot}.png"))
    second.close()


def test_the_playground_in_jupyterlab_and_a_shared_run_in_a_second_page(page, lab_server, output_dir):
    path = workshop_copy(output_dir, "playground-lab")
    open_notebook(page, lab_server, path)
    wait_idle(page, lab_server)
    play_and_change(page)
    link, step, loss = travel_and_share(page, output_dir, "playground-lab")
    assert link.endswith("?recipe=run.trainlab.json") and "/voila/render/" in link
    assert (ROOT / path).parent.joinpath("run.trainlab.json").exists()
    same_run_in_a_second_page(page, f"{lab_server.url}{link}&token={lab_server.token}", step, loss, output_dir,
                              "playground-lab-shared")
    assert_no_console_errors(page)


def test_the_playground_in_voila_and_a_shared_run_in_a_second_page(page, lab_server, output_dir):
    path = workshop_copy(output_dir, "playground-voila")
    page.goto(f"{lab_server.url}/voila/render/{path}?token={lab_server.token}")
    wait_until(lambda: button(page, "Forward").is_visible(), 120, "the dashboard in Voila")
    wait_until(lambda: "paused" in status_text(page) and step_count(page) >= 1, 60, "the first steps")
    play_and_change(page)
    link, step, loss = travel_and_share(page, output_dir, "playground-voila")
    assert link == "?recipe=run.trainlab.json"  # this very app, with the run
    base = page.url.split("?")[0]
    same_run_in_a_second_page(page, f"{base}{link}&token={lab_server.token}", step, loss, output_dir,
                              "playground-voila-shared")
    assert_no_console_errors(page)
