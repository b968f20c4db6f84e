"""The method registry: each reconstruction method declared once.

A :class:`MethodSpec` says what a method is (name, display label, one-line
summary), which generator runs it with which fixed arguments (``tv-joint`` is
``tv`` with ``joint=True``; ``dip-tv`` is ``dipm_tv`` with one network per
element), and which packages it needs. Everything else is read from it: the
command line's options and ``--method`` choices, the napari form, the sidecar
and ``--config`` validation, the demo and the batch manifests.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .params import Param, ParameterError, UnknownParameterError, signature_params

#: Parameters every method accepts through :func:`edxtomo.recon.reconstruct`,
#: handled by the run's control rather than by the algorithm.
COMMON_PARAMS = ("time_limit",)


@dataclass(frozen=True)
class MethodSpec:
    """One reconstruction method.

    Attributes
    ----------
    name
        The name used everywhere (``"dipm-tv"``).
    label
        Display name (layer names are ``"Ge [DIPm-TV]"``).
    target
        ``"module:function"`` of the generator.
    summary
        One line for ``--help`` and tooltips.
    fixed
        Arguments always passed to the generator and hidden from users.
    requires
        Top-level modules that must be importable (optional back ends).
    """

    name: str
    label: str
    target: str
    summary: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()

    def available(self) -> bool:
        """Whether the method's dependencies import here."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    @property
    def function(self) -> Callable[..., Iterator[Any]]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)

    @cached_property
    def params(self) -> dict[str, Param]:
        """The user-settable parameters, in signature order."""
        return {p.name: p for p in signature_params(self.function, drop=tuple(self.fixed))}

    @property
    def takes_control(self) -> bool:
        return "control" in inspect.signature(self.function).parameters

    @property
    def resumable(self) -> bool:
        """Whether the generator can continue from a saved state (``resume=``)."""
        return "resume" in inspect.signature(self.function).parameters

    def defaults(self) -> dict[str, Any]:
        return {n: p.default for n, p in self.params.items()}

    def check(self, params: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Validate and convert ``params``; fill in defaults for the missing ones.

        ``None`` values mean "not given" (the method's default applies) unless
        the parameter accepts ``None`` and the key was given explicitly as the
        only way to express it (``nz=None``). Unknown names raise
        :class:`ParameterError` listing what the method takes.
        """
        prefix = f"{where}: " if where else ""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise UnknownParameterError(
                f"{prefix}method {self.name!r} does not take {', '.join(unknown)} "
                f"(it takes {', '.join(self.params)})")
        out = self.defaults()
        for name, value in params.items():
            if value is None and not self.params[name].optional:
                continue
            out[name] = self.params[name].check(value, where)
        return out


REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) a method; returns it."""
    REGISTRY[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    """The spec of ``name`` (case-insensitive), with the valid names in the error."""
    key = str(name).strip().lower()
    if key not in REGISTRY or not REGISTRY[key].available():
        raise ParameterError(f"unknown method {name!r}: choose one of {', '.join(available_methods())}")
    return REGISTRY[key]


def available_methods() -> list[str]:
    """Names of the methods whose dependencies import here, in registration order."""
    return [n for n, s in REGISTRY.items() if s.available()]


def method_label(name: str) -> str:
    """``"dipm-tv"`` → ``"DIPm-TV"``; unknown names pass through."""
    spec = REGISTRY.get(str(name).strip().lower())
    return spec.label if spec else str(name)


def all_params() -> dict[str, Param]:
    """Every parameter of every available method (first declaration wins), for the CLI."""
    out: dict[str, Param] = {}
    for name in available_methods():
        for pname, p in REGISTRY[name].params.items():
            out.setdefault(pname, p)
    return out


def parse_duration(value: Any) -> float | None:
    """Seconds from ``600``, ``"600"``, ``"90s"``, ``"10m"``, ``"1.5h"``; None/0/"" → None.

    Raises
    ------
    ParameterError
        On anything else, or a negative or non-finite duration.
    """
    if value is None or value == "" or value == 0:
        return None
    text = str(value).strip().lower()
    factor = 1.0
    for suffix, f in (("h", 3600.0), ("min", 60.0), ("m", 60.0), ("s", 1.0)):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)].strip(), f
            break
    try:
        seconds = float(text) * factor
    except ValueError:
        raise ParameterError(f"time_limit must be seconds or a duration like 90s, 10m, 2h; got {value!r}") \
            from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ParameterError(f"time_limit must be a finite, positive duration; got {value!r}")
    return seconds or None


def _builtin() -> None:
    register(MethodSpec("sirt", "SIRT", "edxtomo.recon.sirt:sirt",
                        "SIRT with non-negativity (fast baseline)"))
    register(MethodSpec("tv", "TV", "edxtomo.recon.tv:tv",
                        "total variation per element, preconditioned Chambolle-Pock"))
    register(MethodSpec("tv-joint", "TV-joint", "edxtomo.recon.tv:tv", fixed={"joint": True},
                        summary="vectorial TV coupling all elements"))
    register(MethodSpec("dip-tv", "DIP-TV", "edxtomo.recon.dip:dipm_tv", fixed={"per_element": True},
                        summary="deep image prior + TV, one network per element", requires=("torch",)))
    register(MethodSpec("dipm-tv", "DIPm-TV", "edxtomo.recon.dip:dipm_tv", fixed={"per_element": False},
                        summary="one deep image prior for all elements + TV, held-out stopping",
                        requires=("torch",)))
    for alg in ("sirt", "mlem", "gridrec"):
        register(MethodSpec(f"tomopy-{alg}", f"tomopy {alg.upper()}",
                            "edxtomo.recon.tomopy_baseline:tomopy_recon", fixed={"algorithm": alg},
                            summary=f"tomopy's {alg} (optional baseline)", requires=("tomopy",)))


_builtin()

__all__ = ["COMMON_PARAMS", "REGISTRY", "MethodSpec", "ParameterError", "available_methods", "get_method",
           "method_label", "parse_duration", "register"]
