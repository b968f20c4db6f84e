"""A magicgui form of a method's parameters, built from its declarations.

New methods (and new parameters of existing ones) appear in the GUI without
touching the widgets: each declared parameter (:mod:`edxtomo.recon.params`)
gets an input of its type, choices become combo boxes, declared ranges the
spin boxes' limits, and the declared help the tooltip. A time budget, which
every method accepts, comes first.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox, Widget

from ..devices import available_devices, describe_devices
from ..recon.params import Param, ParameterError
from ..recon.registry import get_method, parse_duration

ADVANCED = "_advanced"
TIME_LIMIT = "time_limit"

#: Shown first, in this order; the rest follow in declaration order.
PREFERRED_ORDER = (TIME_LIMIT, "tv_weight", "iterations", "lr", "snapshot_every", "device", "seed", "nz")

LABELS = {"tv_weight": "TV weight", "iterations": "iterations", "lr": "learning rate",
          "snapshot_every": "snapshot every", "device": "device", "seed": "seed",
          "nz": "depth (voxels)", TIME_LIMIT: "time limit"}

TIME_LIMIT_TIP = ("End the run when this time is spent, as if it had converged (DIP keeps each "
                  "element's best held-out iterate): seconds or 90s, 10m, 1.5h; empty for no limit. "
                  "A DIP run on a CPU takes minutes to hours: 10m gives a good first look.")

#: Spin-box steps where the default step of 1 (int) or 1e-3 (float) is wrong.
STEPS = {"tv_weight": 1e-3, "lr": 1e-4, "relaxation": 0.05, "lr_decay": 0.05, "ema": 0.001,
         "input_jitter": 0.005, "weight_decay": 1e-4, "clip_grad": 0.1}
DECIMALS = {"tv_weight": 4, "lr": 5, "ema": 4, "input_jitter": 4, "weight_decay": 5}
#: Spin boxes cannot show an unbounded range.
WIDGET_LIMIT = 1e9


def device_choices() -> list[str]:
    """``auto``, this machine's devices, and ``cuda`` (validated at start)."""
    found = available_devices()
    return ["auto", *found, *(["cuda"] if not any(d.startswith("cuda") for d in found) else [])]


def _limits(p: Param) -> dict[str, float]:
    b = p.bounds
    lo = -WIDGET_LIMIT if b is None or b.lo is None else b.lo
    hi = WIDGET_LIMIT if b is None or b.hi is None else b.hi
    if p.kind is float and b is not None:
        # An open bound is excluded: step inside it by the smallest shown amount.
        tiny = 10.0 ** -DECIMALS.get(p.name, 3)
        lo = lo + tiny if b.lo_open and b.lo is not None else lo
        hi = hi - tiny if b.hi_open and b.hi is not None else hi
    return {"min": lo, "max": hi}


def widget_for(p: Param) -> Widget | None:
    """The input for one declared parameter (None for ones the form leaves at their default)."""
    label = LABELS.get(p.name, p.name.replace("_", " "))
    tip = p.help
    if p.name == "device":
        w: Widget = ComboBox(name=p.name, label=label, choices=device_choices(), value="auto")
        tip = f"{p.help}\nThis machine:\n{describe_devices()}"
    elif p.choices:
        w = ComboBox(name=p.name, label=label, choices=list(p.choices), value=p.default)
    elif p.kind is bool:
        w = CheckBox(name=p.name, label=label, value=p.default)
    elif p.kind is int and p.default is not None:
        lim = _limits(p)
        w = SpinBox(name=p.name, label=label, value=p.default, min=int(lim["min"]), max=int(lim["max"]))
    elif p.kind is float:
        w = FloatSpinBox(name=p.name, label=label, value=p.default, step=STEPS.get(p.name, 1e-3),
                         **_limits(p))
        if p.name in DECIMALS:
            w.native.setDecimals(DECIMALS[p.name])
    elif p.kind is int or p.kind is tuple:
        # Optional ints (nz) and lists (widths): text, checked by the declaration at Start.
        shown = "" if p.default is None else " ".join(map(str, p.default)) if p.kind is tuple \
            else str(p.default)
        w = LineEdit(name=p.name, label=label, value=shown)
        tip = f"{p.help} ({p.describe_type()})"
    else:
        return None
    w.tooltip = tip
    return w


class ParamsForm(Container):
    """Inputs for one method's parameters; :meth:`values` gives the generator kwargs.

    :meth:`values` raises :class:`~edxtomo.recon.params.ParameterError`,
    naming the field, for a text entry that the declaration refuses.
    """

    def __init__(self, method: str, saved: dict[str, Any] | None = None) -> None:
        super().__init__(labels=True)
        self.method = method
        self.margins = (0, 0, 0, 0)
        self._params = get_method(method).params
        self._advanced: list[Widget] = []
        budget = LineEdit(name=TIME_LIMIT, label=LABELS[TIME_LIMIT], value="")
        budget.tooltip = TIME_LIMIT_TIP
        widgets: dict[str, Widget] = {TIME_LIMIT: budget}
        for name, p in self._params.items():
            w = widget_for(p)
            if w is not None:
                widgets[name] = w
                if p.advanced:
                    self._advanced.append(w)
        first = [n for n in PREFERRED_ORDER if n in widgets and widgets[n] not in self._advanced]
        for name in [*first, *(n for n in widgets if n not in first)]:
            w = widgets[name]
            if saved and name in saved:
                try:
                    w.value = saved[name]
                except (ValueError, TypeError):
                    pass  # a stale saved value must not break the form
            self.append(w)
        if self._advanced:
            # Long signatures (DIP) would bury the everyday inputs; fold the rest away.
            toggle = CheckBox(name=ADVANCED, label="", text="advanced parameters", value=False)
            toggle.tooltip = "Show the parameters that rarely need changing (defaults measured in docs/)."
            toggle.changed.connect(self._show_advanced)
            self.insert(len(self) - len(self._advanced), toggle)
            self._show_advanced(False)

    def _show_advanced(self, show: bool) -> None:
        for w in self._advanced:
            w.visible = show

    def _inputs(self) -> list[Widget]:
        return [w for w in self if w.name != ADVANCED]

    def raw_values(self) -> dict[str, Any]:
        """What the inputs show, unconverted (for saving the form)."""
        return {w.name: w.value for w in self._inputs()}

    def time_limit(self) -> float | None:
        """The time budget in seconds (None: no limit)."""
        try:
            return parse_duration(self[TIME_LIMIT].value)
        except ParameterError as exc:
            raise ParameterError(f"time limit: {exc}") from None

    def values(self) -> dict[str, Any]:
        """The method's parameters, converted and checked by their declarations."""
        out = {}
        for w in self._inputs():
            if w.name == TIME_LIMIT:
                continue
            value = w.value
            if isinstance(w, LineEdit):
                value = value.strip() or None
                if value is None and not self._params[w.name].optional:
                    continue
            out[w.name] = self._params[w.name].check(value, LABELS.get(w.name, w.name))
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for w in self._inputs():
            if w.name in values:
                value = values[w.name]
                if isinstance(w, LineEdit) and not isinstance(value, str):
                    value = "" if value is None else " ".join(map(str, value)) \
                        if isinstance(value, list | tuple) else str(value)
                w.value = value
