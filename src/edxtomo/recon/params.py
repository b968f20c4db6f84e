"""Typed method parameters: declared once, next to the parameter, read everywhere.

A method's generator declares each parameter in its signature with its type,
its choices (``Literal[...]``), its bounds (``Range``) and its help text
(``Doc``)::

    def tv(series, tv_weight: Annotated[float, Range(0, None), Doc("...")] = 0.05, ...)

:func:`signature_params` turns such a signature into :class:`Param` objects.
The command line builds its options from them, the napari form its combo
boxes, spin-box limits and tooltips, and :meth:`Param.check` validates values
from any source (keyword arguments, ``--config`` sidecars, batch manifests)
with messages that name the parameter.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from ..errors import EdxtomoError

__all__ = ["Annotated", "Doc", "Literal", "Param", "ParameterError", "Range", "UnknownParameterError",
           "check_call", "signature_params"]


#: Parameters declared after sidecars and saved run states were first written, with the value
#: runs before them used: a complete record without one of them replays with that value.
ADDED_LATER: dict[str, Any] = {"fine_width": 16, "heldout_min_tilts": 4}


class ParameterError(EdxtomoError):
    """A method parameter with a wrong type, a value out of range or an unknown name."""


class UnknownParameterError(ParameterError, TypeError):
    """A parameter the method does not take (a ``TypeError`` too, as for any unknown keyword)."""


@dataclass(frozen=True)
class Range:
    """Closed (or open, with ``*_open``) numeric bounds; ``None`` means unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def violated(self, value: float) -> str:
        """The bound ``value`` breaks, as text (``">= 0"``, ``"< 2"``)."""
        if self.lo is not None and not (value > self.lo if self.lo_open else value >= self.lo):
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"

    def describe(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}{')' if self.hi_open or self.hi is None else ']'}"


@dataclass(frozen=True)
class Doc:
    """One-line help: what the parameter does, its unit, a typical range."""

    text: str
    advanced: bool = False


#: Python types a parameter may have (beyond Literal choices).
_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Param:
    """One declared parameter of a method.

    Attributes
    ----------
    name
        Keyword name (``tv_weight``); the command-line option is ``--tv-weight``.
    kind
        ``bool``, ``int``, ``float``, ``str`` or ``tuple`` (a sequence of ints).
    default
        The method's default.
    choices
        Allowed values for ``Literal`` parameters, else empty.
    bounds
        Numeric bounds, or None.
    optional
        ``None`` is accepted (``nz=None``: the detector width).
    help
        Help text shown as tooltip and in ``--help``.
    advanced
        Folded away in the napari form.
    """

    name: str
    kind: type
    default: Any
    choices: tuple[Any, ...] = ()
    bounds: Range | None = None
    optional: bool = False
    help: str = ""
    advanced: bool = False

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, where: str = "") -> Any:
        """Return ``value`` converted to this parameter's type, or raise :class:`ParameterError`.

        ``where`` prefixes the message (a file name, ``"--config"``...).
        Strings are converted (``"5"`` → 5 for an int), so values from JSON,
        TOML or the command line go through the same check.
        """
        prefix = f"{where}: " if where else ""
        if value is None:
            if self.optional:
                return None
            raise ParameterError(f"{prefix}{self.name} must be given (it cannot be None)")
        try:
            out = self._convert(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{prefix}{self.name} must be {self.describe_type()}, got {value!r}") from None
        if self.choices and out not in self.choices:
            raise ParameterError(f"{prefix}unknown {self.name} {value!r}: choose one of "
                                 f"{', '.join(map(str, self.choices))}")
        values = out if isinstance(out, tuple) else (out,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ParameterError(f"{prefix}{self.name} must be a finite number, got {value!r}")
            if self.bounds is not None and isinstance(v, int | float) and not isinstance(v, bool) \
                    and not self.bounds.contains(v):
                raise ParameterError(f"{prefix}{self.name} must be {self.bounds.violated(v)}, got {value!r}")
        return out

    def _convert(self, value: Any) -> Any:
        kind = self.kind
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on", "false", "no",
                                                                    "0", "off"):
                return value.strip().lower() in ("true", "yes", "1", "on")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise TypeError
        if kind is int:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(value) if isinstance(value, int) else int(str(value).strip())
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value) if isinstance(value, int | float) else float(str(value).strip())
        if kind is tuple:
            if isinstance(value, str):
                value = value.replace(",", " ").split()
            if not isinstance(value, Sequence) or not value:
                raise TypeError
            return tuple(Param("item", int, 0).check(v) for v in value)
        if kind is str:
            if not isinstance(value, str):
                raise TypeError
            return value.strip().lower() if self.choices else value
        raise TypeError

    def describe_type(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        name = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
                tuple: "a list of whole numbers"}[self.kind]
        if self.bounds is not None:
            name += f" in {self.bounds.describe()}"
        return name + (" (or null)" if self.optional else "")


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """``Annotated[X | None, meta...]`` → ``(X, [meta...], optional)``."""
    meta: list[Any] = []
    if get_origin(annotation) is Annotated:
        annotation, *meta = get_args(annotation)
    optional = False
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    return annotation, meta, optional


def _param(name: str, annotation: Any, default: Any) -> Param:
    base, meta, optional = _unwrap(annotation)
    choices: tuple[Any, ...] = ()
    if get_origin(base) is Literal:
        choices = get_args(base)
        kind: type = type(choices[0])
    elif base is tuple or get_origin(base) in (tuple, list, Sequence):
        kind = tuple
    elif base in _SCALARS:
        kind = base
    else:
        raise TypeError(f"parameter {name!r}: unsupported annotation {annotation!r}")
    bounds = next((m for m in meta if isinstance(m, Range)), None)
    doc = next((m for m in meta if isinstance(m, Doc)), Doc(""))
    if kind is tuple and isinstance(default, list):
        default = tuple(default)
    return Param(name, kind, default, choices, bounds, optional or default is None, doc.text, doc.advanced)


#: Arguments of a generator that are not user parameters.
NOT_PARAMETERS = ("series", "control", "resume")


@functools.cache
def declared_params(func: Callable[..., Any]) -> dict[str, Param]:
    """The declared parameters of a method's generator, by name, in signature order.

    Every keyword parameter with a default must be annotated with a supported
    type; an undeclared one is a programming error and raises ``TypeError``.
    Read once per generator: the registry, the command line and
    :func:`check_call` share the result.
    """
    hints = typing.get_type_hints(func, include_extras=True)
    out: dict[str, Param] = {}
    for name, p in inspect.signature(func).parameters.items():
        if name in NOT_PARAMETERS or p.default is p.empty:
            continue
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        if name not in hints:
            raise TypeError(f"{func.__qualname__}: parameter {name!r} has no type annotation")
        out[name] = _param(name, hints[name], p.default)
    return out


def signature_params(func: Callable[..., Any], drop: Sequence[str] = ()) -> list[Param]:
    """:func:`declared_params` as a list, without the names in ``drop`` (a spec's fixed arguments)."""
    return [p for n, p in declared_params(func).items() if n not in drop]


def check_call(func: Callable[..., Any], values: dict[str, Any]) -> dict[str, Any]:
    """Validate a generator's own arguments (``locals()`` at its start) against its declarations.

    Generators call this first, so a direct call (not through
    :func:`edxtomo.recon.reconstruct`) is checked by the same declarations.
    Returns the converted values of the declared parameters.
    """
    return {n: p.check(values[n]) for n, p in declared_params(func).items() if n in values}


# Declarations shared by several methods: one text and one range each.
Iterations = Annotated[int, Range(1, 10_000_000), Doc("maximum number of iterations")]
SnapshotEvery = Annotated[int, Range(1, 10_000_000), Doc(
    "iterations between snapshots (live view, checkpoints, progress of the losses)")]
Device = Annotated[str, Doc("auto, cpu, cuda, cuda:N or mps; auto takes a GPU when there is one")]
Depth = Annotated[int | None, Range(1, 65_536), Doc(
    "volume depth along the beam in voxels (empty: the map width); thinner for a lamella", advanced=True)]
Seed = Annotated[int, Range(0, 2**31 - 1), Doc("random seed of the network and its noise input")]
TVWeight = Annotated[float, Range(0, 1e4), Doc(
    "dimensionless TV weight: more smooths more; typical 0.01-0.3 (layered samples want more)")]
