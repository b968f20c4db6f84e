"""Reconstruction algorithms, all behind one generator protocol.

>>> for snap in reconstruct(series, method="tv", iterations=200):  # doctest: +SKIP
...     print(snap.iteration, snap.losses)

Closing the generator (``gen.close()``, ``break``) stops the run; the last
snapshot received stands as the result.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from ..tiltseries import TiltSeries
from .control import RunControl
from .snapshot import Snapshot

#: method name → "module:function" of its generator.
METHODS: dict[str, str] = {
    "sirt": "edxtomo.recon.sirt:sirt",
    "tv": "edxtomo.recon.tv:tv",
    "tv-joint": "edxtomo.recon.tv:tv_joint",
    "dip-tv": "edxtomo.recon.dip:dip_tv",
    "dipm-tv": "edxtomo.recon.dip:dipm_tv",
}


def share_signature(wrapper: Callable[..., Any], base: Callable[..., Any], drop: tuple[str, ...] = ()) -> None:
    """Give a ``**params`` wrapper the signature of ``base`` minus ``drop``.

    Forms and the command line read a method's parameters and defaults from
    its signature, so a thin wrapper (``tv_joint`` = ``tv`` with
    ``joint=True``) must present the parameters it forwards.
    """
    sig = inspect.signature(base)
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for n, p in sig.parameters.items() if n not in drop])


def _register_optional() -> None:
    from .tomopy_baseline import register

    register()


def register_method(name: str, target: str) -> None:
    """Make ``reconstruct(method=name)`` call the generator at ``"module:function"``."""
    METHODS[name] = target


def method_function(method: str) -> Callable[..., Iterator[Snapshot]]:
    """The generator function behind ``method``."""
    key = method.strip().lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(available_methods())}")
    module, func = METHODS[key].split(":")
    return getattr(importlib.import_module(module), func)


def available_methods() -> list[str]:
    """Method names usable here (optional back ends only when importable)."""
    return list(METHODS)


def reconstruct(series: TiltSeries, method: str = "tv", control: RunControl | None = None,
                **params: Any) -> Iterator[Snapshot]:
    """Run ``method`` on ``series`` and yield :class:`Snapshot` objects.

    Parameters are those of the method's function (``iterations``,
    ``snapshot_every``, ``device``, ``tv_weight``...); an unknown parameter
    raises ``TypeError`` naming it. ``control`` reports progress every
    iteration and stops the run between snapshots, for methods that take it
    (others stop when the generator is closed).
    """
    func = method_function(method)
    if control is not None and takes_control(method):
        params = {**params, "control": control}
    return func(series, **params)


def takes_control(method: str) -> bool:
    """Whether ``method`` accepts a :class:`RunControl` (progress and stop between snapshots)."""
    return "control" in inspect.signature(method_function(method)).parameters


def run_to_end(gen: Iterator[Snapshot]) -> Snapshot:
    """Exhaust a reconstruction generator and return its last snapshot."""
    last = None
    for snap in gen:
        last = snap
    if last is None:
        raise RuntimeError("the reconstruction yielded no snapshot")
    return last


_register_optional()

__all__ = ["METHODS", "RunControl", "Snapshot", "available_methods", "reconstruct", "register_method", "run_to_end"]
