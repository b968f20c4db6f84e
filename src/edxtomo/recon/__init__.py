"""Reconstruction algorithms, all behind one generator protocol.

>>> for snap in reconstruct(series, method="tv", iterations=200):  # doctest: +SKIP
...     print(snap.iteration, snap.losses)

Closing the generator (``gen.close()``, ``break``) stops the run; the last
snapshot received stands as the result. What each method is and takes is
declared once in :mod:`edxtomo.recon.registry`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..tiltseries import TiltSeries
from .control import RunControl
from .memory import check_fits
from .params import ParameterError
from .registry import (
    REGISTRY,
    MethodSpec,
    available_methods,
    get_method,
    method_label,
    parse_duration,
    register,
)
from .snapshot import Snapshot
from .status import RunStatus, StopReason


def reconstruct(series: TiltSeries, method: str = "tv", control: RunControl | None = None,
                time_limit: float | str | None = None, resume: dict[str, Any] | None = None,
                **params: Any) -> Iterator[Snapshot]:
    """Run ``method`` on ``series`` and yield :class:`Snapshot` objects.

    Parameters are the method's declared parameters (``iterations``,
    ``snapshot_every``, ``device``, ``tv_weight``...; see
    ``get_method(method).params``), validated before the run starts: an
    unknown name, a wrong type or a value out of range raises
    :class:`~edxtomo.recon.params.ParameterError` naming it.

    ``control`` reports progress every iteration and stops the run between
    snapshots (others stop when the generator is closed). A run that would
    not fit in the device's memory raises :class:`~edxtomo.errors.ResourceError`
    with the estimate (:mod:`edxtomo.recon.memory`) before allocating. ``time_limit``
    (seconds, or ``"10m"``, ``"1.5h"``) ends the run when spent as if it had
    converged: DIP methods return each element's held-out best iterate, and
    the final snapshot's ``stopped`` says ``"time limit"``. ``resume`` is a
    state saved from a snapshot of an interrupted run (``snap.state()``), for
    methods that can continue one (``get_method(method).resumable``).
    """
    spec = get_method(method)
    checked = spec.check(params)
    if "device" in checked:
        from ..devices import resolve_device

        device = str(resolve_device(checked["device"]))
    else:
        device = "cpu"
    # Before anything large is allocated: refuse a run that cannot fit, saying why.
    check_fits(spec.name, series.shape, len(series.elements), checked, device)
    seconds = parse_duration(time_limit)
    if seconds is not None:
        control = control or RunControl()
        control.set_time_limit(seconds)
    if control is not None and spec.takes_control:
        checked["control"] = control
    if resume is not None:
        if not spec.resumable:
            raise ParameterError(f"method {spec.name!r} cannot resume a run: start it again")
        checked["resume"] = resume
    return spec.function(series, **spec.fixed, **checked)


def takes_control(method: str) -> bool:
    """Whether ``method`` accepts a :class:`RunControl` (progress and stop between snapshots)."""
    return get_method(method).takes_control


def run_to_end(gen: Iterator[Snapshot]) -> Snapshot:
    """Exhaust a reconstruction generator and return its last snapshot."""
    last = None
    for snap in gen:
        last = snap
    if last is None:
        raise RuntimeError("the reconstruction yielded no snapshot")
    return last


__all__ = ["REGISTRY", "MethodSpec", "ParameterError", "RunControl", "RunStatus", "Snapshot", "StopReason",
           "available_methods", "get_method", "method_label", "parse_duration", "reconstruct", "register",
           "run_to_end", "takes_control"]
