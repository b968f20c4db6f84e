"""Command-line options of reading and of reconstruction methods, and ``--config`` checks.

Every parameter a method declares (:mod:`edxtomo.recon.params`) becomes an
option (``tv_weight`` → ``--tv-weight``) with its type, choices and help;
``reconstruct``, ``resolution`` and batch manifests read values through
:func:`method_params_from_args` and :func:`config_params`, so a value from
any of them is checked by the same declaration.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .recon.params import ADDED_LATER, Param, ParameterError
from .recon.registry import all_params, available_methods, get_method, parse_duration

#: Keys a reconstruction sidecar may hold (``--config`` reports any other).
SIDECAR_KEYS = frozenset({
    "format", "status", "stopped", "error", "method", "params", "time_limit_s", "elements", "lines",
    "angles", "tilt_range", "missing_wedge_deg", "pixel_size_nm", "input", "read_options",
    "iterations_done", "elapsed_s", "info", "final_losses", "loss_history", "provenance", "written",
    "versions", "outputs", "resolution", "output",
})
SIDECAR_FORMAT = "edxtomo-reconstruction/1"
#: Command-line names of the read options (``--lines``, ``--bin``...), as in ``ReadOptions``.
READ_OPTIONS = ("lines", "bin", "align", "angles", "angle_start", "angle_step", "background",
                "normalise", "axes", "tilt_axis", "refine", "skip_bad", "align_reference")


def _argparse_type(p: Param):
    def convert(text: str) -> Any:
        try:
            return p.check(text)
        except ParameterError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{p.name} ")) from None
    convert.__name__ = p.describe_type()
    return convert


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_method_options(parser: argparse.ArgumentParser, default_method: str | None = "dipm-tv") -> None:
    """``--method`` and one option per declared parameter of every available method.

    Options default to None ("not given"): the method's own default, or the
    ``--config`` sidecar's value, applies.
    """
    methods = available_methods()
    group = parser.add_argument_group(
        "method parameters", "each method takes its own subset (see docs/algorithms.md); "
        "values are checked against the method's declared types and ranges")
    group.add_argument("--method", choices=methods, default=None, type=str.lower,
                       help=f"reconstruction method (default {default_method})" if default_method else
                       "reconstruction method")
    group.add_argument("--time-limit", metavar="DURATION",
                       help="end the run when this is spent, as if converged: seconds or 90s, 10m, 1.5h")
    for name, p in all_params().items():
        takers = [m for m in methods if name in get_method(m).params]
        who = "" if len(takers) == len(methods) else f" [{', '.join(takers)}]"
        defaults = {m: get_method(m).params[name].default for m in takers}
        if len({repr(v) for v in defaults.values()}) == 1:
            default = "" if p.default is None else f"; default {_show(p.default)}"
        else:
            default = "; default " + ", ".join(f"{m} {_show(v)}" for m, v in defaults.items())
        text = f"{p.help}{default}{who}"
        if p.kind is bool:
            group.add_argument(p.option, dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=text)
        elif p.kind is tuple:
            group.add_argument(p.option, dest=name, nargs="+", type=int, default=None, metavar="N", help=text)
        else:
            metavar = "{" + ",".join(map(str, p.choices)) + "}" if p.choices else p.name.upper()
            group.add_argument(p.option, dest=name, default=None, metavar=metavar,
                               type=_argparse_type(p), help=text)


def method_params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The method parameters given on the command line (unset ones left out)."""
    out = {}
    for name in all_params():
        value = getattr(args, name, None)
        if value is not None:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def config_params(cfg: Mapping[str, Any], method: str, source: str | Path) -> dict[str, Any]:
    """Check a sidecar's ``params`` against ``method``'s declarations.

    Raises
    ------
    ParameterError
        Naming ``source``, the key and what it must be, for unknown keys,
        wrong types and out-of-range values.
    """
    params = cfg.get("params", {})
    if not isinstance(params, Mapping):
        raise ParameterError(f"{source}: 'params' must be an object of parameter values")
    spec = get_method(method)
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ParameterError(f"{source}: method {method!r} does not take {', '.join(unknown)} "
                             f"(it takes {', '.join(spec.params)})")
    checked = {k: spec.params[k].check(v, f"{source}: params") for k, v in params.items()}
    missing = set(spec.params) - set(params)
    if checked and missing and missing <= set(ADDED_LATER):  # written by an earlier version
        checked.update({k: spec.params[k].check(ADDED_LATER[k]) for k in missing})
    return checked


def check_sidecar(cfg: Any, source: str | Path) -> list[str]:
    """Raise on a sidecar that cannot be re-run; return warnings (unknown keys) otherwise."""
    if not isinstance(cfg, Mapping) or "method" not in cfg or "params" not in cfg:
        raise ParameterError(f"{source}: not a reconstruction sidecar (no 'method'/'params')")
    fmt = cfg.get("format", SIDECAR_FORMAT)
    if fmt != SIDECAR_FORMAT:
        raise ParameterError(f"{source}: unknown sidecar format {fmt!r} (this version reads {SIDECAR_FORMAT})")
    get_method(str(cfg["method"]))
    warnings = [f"{source}: ignoring unknown key {k!r}" for k in sorted(set(cfg) - SIDECAR_KEYS)]
    if cfg.get("time_limit_s") is not None:
        parse_duration(cfg["time_limit_s"])
    return warnings


def add_read_options(p: argparse.ArgumentParser) -> None:
    """The options of :class:`~edxtomo.io.ReadOptions` (``extract``, ``reconstruct``, ``align``...)."""
    from .alignment.command import NORMALISE_HELP, add_alignment_options
    from .io.options import ALIGN_REFERENCES, NORMALISE

    p.add_argument("--lines", nargs="+", metavar="LINE", help="X-ray lines (Ge_Ka Te_La ...) or elements")
    p.add_argument("--bin", type=int, default=None, metavar="B", help="count-preserving binning (1, 2, 4, 8)")
    p.add_argument("--align", action="store_true", default=None,
                   help="translation-only alignment of the tilt series first (--tilt-axis or --refine "
                        "run the full alignment instead)")
    p.add_argument("--angles", metavar="FILE", help="tilt angles in degrees, one per line")
    p.add_argument("--angle-start", type=float, metavar="DEG",
                   help="first tilt angle, with --angle-step, when files carry no angles")
    p.add_argument("--angle-step", type=float, metavar="DEG", help="tilt step in degrees")
    p.add_argument("--background", action="store_true", default=None,
                   help="subtract exspy's background windows from each line")
    p.add_argument("--normalise", choices=NORMALISE, default=None, help=NORMALISE_HELP)
    add_alignment_options(p)
    p.add_argument("--align-reference", choices=ALIGN_REFERENCES, default=None,
                   help="images the alignment registers: maps (the summed element maps, default), haadf "
                        "(the files' HAADF images), or auto (HAADF when every spectrum file carries one)")
    p.add_argument("--axes", help="axis order of .mat/.tif stacks, e.g. YXC (default inferred)")
    p.add_argument("--skip-bad", action="store_true", default=None,
                   help="go on without damaged or truncated spectrum files (recorded in the provenance)")
