"""Keyboard shortcuts for a dashboard: P plays or pauses, S runs one step, while the dashboard has focus.

An instructor at a projector can then drive the lab without aiming the mouse at small
buttons. The browser listens on the dashboard's own element (``CONTAINER_CLASS``), which is
made focusable, so the keys act only when the dashboard was clicked last; keys typed into a
box or slider readout are left alone. A button that is disabled while it has focus (Forward,
once it ran; every stage button, once Play is pressed) would drop the focus onto the page,
and the keys with it: the dashboard takes the focus back, unless the learner clicked elsewhere. The element carries ``data-lm-suppress-shortcuts``,
so JupyterLab's own single-key shortcuts do not take these keys while it has focus.
"""

from __future__ import annotations

from typing import Callable

import anywidget
import traitlets

__all__ = ["Shortcuts", "KEYS", "CONTAINER_CLASS"]

#: Key -> the button it presses.
KEYS: dict[str, str] = {"p": "Play", "s": "Step"}

#: The CSS class of the element whose keys are listened to (the dashboard gives itself this class).
CONTAINER_CLASS = "trainlab-dashboard"

_ESM = """
// The view is rendered before the dashboard puts it in the page: wait (up to 10 s) until it is there.
function listen(model, el, tries) {
  const box = el.closest("." + model.get("container_class"));
  if (!box) {
    if (tries < 200) setTimeout(() => listen(model, el, tries + 1), 50);
    return;
  }
  if (box.dataset.trainlabKeys) return;  // one listener per dashboard, even if shown twice
  box.dataset.trainlabKeys = "1";
  box.setAttribute("tabindex", "0");
  box.setAttribute("data-lm-suppress-shortcuts", "true");
  box.style.outline = "none";
  const keys = model.get("bindings");
  // Focus lost to nowhere (a focused button got disabled), not to a click elsewhere: take it back.
  let clickedAway = false;
  document.addEventListener("pointerdown", (event) => { clickedAway = !box.contains(event.target); }, true);
  box.addEventListener("focusout", () => setTimeout(() => {
    const lost = !document.activeElement || document.activeElement === document.body;
    if (lost && !clickedAway && box.isConnected) box.focus({ preventScroll: true });
  }, 0));
  box.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
    const key = event.key.toLowerCase();
    if (typing || event.ctrlKey || event.metaKey || event.altKey || !(key in keys)) return;
    event.preventDefault();
    event.stopPropagation();
    model.send({ press: keys[key] });
  });
}

export default { render({ model, el }) { listen(model, el, 0); } };
"""


class Shortcuts(anywidget.AnyWidget):
    """An invisible widget that turns key presses on its dashboard into button presses (``on_press(label)``)."""

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    bindings = traitlets.Dict(KEYS, help="key -> button label").tag(sync=True)
    container_class = traitlets.Unicode(CONTAINER_CLASS, help="the element listened to").tag(sync=True)

    def __init__(self, on_press: Callable[[str], None], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._on_press = on_press
        self.on_msg(self._received)

    def _received(self, widget: object, content: dict, buffers: list) -> None:
        label = content.get("press") if isinstance(content, dict) else None
        if label in self.bindings.values():  # only the buttons it was given: the page cannot ask for others
            self._on_press(label)
