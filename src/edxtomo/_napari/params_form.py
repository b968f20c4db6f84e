"""A magicgui form of a method's parameters, built from its generator's signature.

New methods (and new parameters of existing ones) appear in the GUI without
touching the widgets: every keyword with a plain default (bool, int, float,
str) gets an input; ``None`` defaults and structured values stay at the
method's default.  Known names get sensible ranges and steps.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox, Widget

from ..devices import available_devices, describe_devices
from ..runner import default_params

ADVANCED = "_advanced"

#: Shown first, in this order; the rest follow in signature order.
PREFERRED_ORDER = ("tv_weight", "iterations", "lr", "snapshot_every", "device", "seed")

LABELS = {"tv_weight": "TV weight", "iterations": "iterations", "lr": "learning rate",
          "snapshot_every": "snapshot every", "device": "device", "seed": "seed"}

FLOAT_OPTIONS: dict[str, dict[str, float]] = {
    "tv_weight": {"min": 0.0, "max": 1e4, "step": 1e-4},
    "lr": {"min": 1e-7, "max": 1.0, "step": 1e-5},
    "relaxation": {"min": 0.01, "max": 1.99, "step": 0.05},
    "lr_decay": {"min": 0.001, "max": 1.0, "step": 0.05},
    "ema": {"min": 0.0, "max": 0.9999, "step": 0.001},
    "input_jitter": {"min": 0.0, "max": 1.0, "step": 0.005},
}
INT_OPTIONS: dict[str, dict[str, int]] = {
    "iterations": {"min": 1, "max": 1_000_000},
    "snapshot_every": {"min": 1, "max": 100_000},
    "seed": {"min": 0, "max": 2**31 - 1},
}


def device_choices() -> list[str]:
    """``auto``, this machine's devices, and ``cuda`` (validated at start)."""
    found = available_devices()
    return ["auto", *found, *(["cuda"] if not any(d.startswith("cuda") for d in found) else [])]


def _widget_for(name: str, default: Any) -> Widget | None:
    label = LABELS.get(name, name.replace("_", " "))
    if name == "device":
        w = ComboBox(name=name, label=label, choices=device_choices(), value="auto")
        w.tooltip = "This machine:\n" + describe_devices()
        return w
    if isinstance(default, bool):
        return CheckBox(name=name, label=label, value=default)
    if isinstance(default, int):
        opts = INT_OPTIONS.get(name, {"min": -(2**31), "max": 2**31 - 1})
        return SpinBox(name=name, label=label, value=default, **opts)
    if isinstance(default, float):
        opts = FLOAT_OPTIONS.get(name, {"min": -1e9, "max": 1e9, "step": 1e-3})
        return FloatSpinBox(name=name, label=label, value=default, **opts)
    if isinstance(default, str):
        return LineEdit(name=name, label=label, value=default)
    return None


def ordered_defaults(method: str) -> dict[str, Any]:
    params = default_params(method)
    first = [n for n in PREFERRED_ORDER if n in params]
    return {n: params[n] for n in [*first, *(n for n in params if n not in first)]}


class ParamsForm(Container):
    """Inputs for one method's parameters; :meth:`values` gives the generator kwargs."""

    def __init__(self, method: str, saved: dict[str, Any] | None = None) -> None:
        super().__init__(labels=True)
        self.method = method
        self.margins = (0, 0, 0, 0)
        for name, default in ordered_defaults(method).items():
            widget = _widget_for(name, default)
            if widget is None:
                continue
            if saved and name in saved:
                try:
                    widget.value = saved[name]
                except (ValueError, TypeError):
                    pass  # a stale saved value must not break the form
            self.append(widget)
        self._advanced = [w for w in self if w.name not in PREFERRED_ORDER]
        if self._advanced:
            # Long signatures (DIP) would bury the everyday inputs; fold the rest away.
            toggle = CheckBox(name=ADVANCED, label="", text="advanced parameters", value=False)
            toggle.changed.connect(self._show_advanced)
            self.insert(len(self) - len(self._advanced), toggle)
            self._show_advanced(False)

    def _show_advanced(self, show: bool) -> None:
        for w in self._advanced:
            w.visible = show

    def _inputs(self) -> list[Widget]:
        return [w for w in self if w.name != ADVANCED]

    def values(self) -> dict[str, Any]:
        return {w.name: w.value for w in self._inputs()}

    def set_values(self, values: dict[str, Any]) -> None:
        for w in self._inputs():
            if w.name in values:
                w.value = values[w.name]
