"""Batch manifests (TOML or JSON): a list of reconstruction tasks.

A manifest is ``{"task": [{...}, ...]}`` with an optional ``defaults`` table
merged into every task. One task entry is::

    name = "cell-A-tv"                 # folder name under --out
    input = "series/cell-A"            # or a list of files; relative to the manifest
    method = "tv"
    params = { tv_weight = 0.05, iterations = 300, time_limit = "20m" }
    read = { lines = ["Ge_La"], bin = 4, align = true }   # edxtomo.io.ReadOptions keys
    elements = ["Ge"]                  # optional selection, as --elements
    tilt_range = [-40, 40]             # optional, as --tilt-range
    grid = { tv_weight = [0.01, 0.02], method = ["tv", "dipm-tv"] }  # one task per combination
    series_folder = "series"           # instead of input: one task per subfolder

Everything is checked when the manifest is read (unknown keys, methods,
parameters, missing inputs, duplicate names), so a typo fails in a second
instead of on a worker an hour later.
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASK_KEYS = ("name", "input", "series_folder", "method", "params", "read", "elements",
             "tilt_range", "grid")
DEFAULT_METHOD = "dipm-tv"
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,-]*$")


class ManifestError(ValueError):
    """The manifest is unreadable or a task in it is invalid; the message names both."""


@dataclass(frozen=True)
class Task:
    """One reconstruction: what ``edxtomo reconstruct`` would be given.

    Attributes
    ----------
    name
        Unique name; the task writes ``OUT/<name>/``.
    inputs
        Absolute paths of the input folder or files.
    method, params
        Method name and its parameters (defaults filled in, validated).
    read
        Read options (:class:`edxtomo.io.ReadOptions` keys), paths made absolute.
    elements, tilt_range
        Optional selections, as ``--elements`` and ``--tilt-range``.
    time_limit
        Seconds, as ``--time-limit`` (``params.time_limit`` in the manifest).
    sweep
        Name of the manifest entry a grid expanded into this task ("" if none).
    grid_point
        The grid values this task took (empty without a grid).
    """

    name: str
    inputs: tuple[str, ...]
    method: str
    params: dict[str, Any]
    read: dict[str, Any] = field(default_factory=dict)
    elements: tuple[str, ...] | None = None
    tilt_range: tuple[float, float] | None = None
    time_limit: float | None = None
    sweep: str = ""
    grid_point: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """Everything that determines the result, as plain JSON (compared by ``--resume``)."""
        return json.loads(json.dumps({
            "inputs": list(self.inputs), "method": self.method, "params": self.params,
            "read": self.read, "elements": list(self.elements) if self.elements else None,
            "tilt_range": list(self.tilt_range) if self.tilt_range else None,
            "time_limit": self.time_limit,
        }))


def load_manifest(path: str | Path) -> list[Task]:
    """Read a TOML or JSON manifest into validated tasks (grids expanded).

    Raises
    ------
    ManifestError
        Naming the manifest, the task and the problem.
    """
    path = Path(path).resolve()
    raw = _read_raw(path)
    entries = raw.get("task")
    if not isinstance(entries, list) or not entries:
        raise ManifestError(f"{path}: no tasks: expected a list of [[task]] tables "
                            '(JSON: {"task": [{...}]})')
    unknown = sorted(set(raw) - {"task", "defaults"})
    if unknown:
        raise ManifestError(f"{path}: unknown top-level key(s) {', '.join(unknown)} "
                            "(expected 'task' and optionally 'defaults')")
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ManifestError(f"{path}: 'defaults' must be a table")
    tasks: list[Task] = []
    for i, entry in enumerate(entries):
        label = f"task {i + 1}" + (f" ({entry['name']!r})" if isinstance(entry, dict)
                                   and "name" in entry else "")
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}: {label}: expected a table, got {type(entry).__name__}")
        try:
            tasks.extend(_expand(_merge(defaults, entry), path.parent))
        except ManifestError as exc:
            raise ManifestError(f"{path}: {label}: {exc}") from None
    seen: dict[str, int] = {}
    for t in tasks:
        seen[t.name] = seen.get(t.name, 0) + 1
    dupes = sorted(n for n, c in seen.items() if c > 1)
    if dupes:
        raise ManifestError(f"{path}: duplicate task name(s) {', '.join(dupes)}: "
                            "each task writes its own folder, give them different names")
    return tasks


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ManifestError(f"{path}: not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a table at the top level")
    return data


def _merge(defaults: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """Task keys win; ``params``, ``read`` and ``grid`` tables merge key by key."""
    out = {**defaults, **entry}
    for key in ("params", "read", "grid"):
        if isinstance(defaults.get(key), dict) and isinstance(entry.get(key), dict):
            out[key] = {**defaults[key], **entry[key]}
    return out


def _expand(entry: dict[str, Any], base: Path) -> list[Task]:
    unknown = sorted(set(entry) - set(TASK_KEYS))
    if unknown:
        raise ManifestError(f"unknown key(s) {', '.join(unknown)} (a task takes {', '.join(TASK_KEYS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError("every task needs a 'name' (its output folder)")
    read = _read_options(entry.get("read", {}), base)
    elements = entry.get("elements")
    if elements is not None and (not isinstance(elements, list) or not elements):
        raise ManifestError("'elements' must be a list of element symbols, e.g. [\"Ge\", \"Sb\"]")
    tilt_range = entry.get("tilt_range")
    if tilt_range is not None:
        if not (isinstance(tilt_range, list) and len(tilt_range) == 2
                and all(isinstance(a, (int, float)) for a in tilt_range)):
            raise ManifestError("'tilt_range' must be [MIN, MAX] in degrees")
        tilt_range = (float(tilt_range[0]), float(tilt_range[1]))
    params = entry.get("params", {})
    if not isinstance(params, dict):
        raise ManifestError("'params' must be a table of method parameters")
    grid = entry.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ManifestError("'grid' must map names to non-empty lists, e.g. tv_weight = [0.02, 0.05]")

    common = {"read": read, "elements": tuple(elements) if elements else None,
              "tilt_range": tilt_range}
    tasks = []
    for series_name, inputs in _inputs(entry, base):
        base_name = f"{name}-{series_name}" if series_name else name
        points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
        for point in points:
            suffix = "-".join(f"{k}={_fmt(v)}" for k, v in point.items())
            task_name = f"{base_name}-{suffix}" if suffix else base_name
            method = str(point.get("method", entry.get("method", DEFAULT_METHOD)))
            merged = {**params, **{k: v for k, v in point.items() if k != "method"}}
            # As `reconstruct --time-limit`: a budget for the run, not a method parameter.
            time_limit = _time_limit(merged.pop("time_limit", None))
            tasks.append(Task(name=_check_name(task_name), inputs=inputs, method=method,
                              params=_clean(method, merged), time_limit=time_limit,
                              sweep=base_name if grid else "", grid_point=point, **common))
    return tasks


def _inputs(entry: dict[str, Any], base: Path) -> list[tuple[str, tuple[str, ...]]]:
    """``[(series name or "", absolute inputs)]``: one item, or one per subfolder of ``series_folder``."""
    if ("input" in entry) == ("series_folder" in entry):
        raise ManifestError("give either 'input' (one series) or 'series_folder' (one task per subfolder)")
    if "input" in entry:
        raw = entry["input"]
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise ManifestError("'input' must be a path or a list of paths")
        paths = [_resolve(i, base) for i in items]
        for p in paths:
            if not p.exists() and not any(ch in str(p) for ch in "*?["):
                raise ManifestError(f"input {p}: no such file or folder")
        return [("", tuple(str(p) for p in paths))]
    folder = _resolve(str(entry["series_folder"]), base)
    if not folder.is_dir():
        raise ManifestError(f"series_folder {folder}: no such folder")
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        raise ManifestError(f"series_folder {folder}: holds no series subfolders")
    return [(p.name, (str(p),)) for p in subs]


def _read_options(read: Any, base: Path) -> dict[str, Any]:
    """The task's read options, checked by :class:`~edxtomo.io.ReadOptions`, files made absolute."""
    from ..errors import InputError
    from ..io import ReadOptions

    if not isinstance(read, dict):
        raise ManifestError("'read' must be a table of read options")
    out = dict(read)
    for key in ("angles_file", "angles"):  # "angles" as a string is a file, as in sidecars
        if isinstance(out.get(key), str):
            out[key] = str(_resolve(out[key], base))
    try:
        ReadOptions.from_dict(out, where="read")
    except InputError as exc:
        raise ManifestError(str(exc)) from None
    return out


def _time_limit(value: Any) -> float | None:
    from ..recon.registry import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ManifestError(f"time_limit: {exc}") from None


def _clean(method: str, params: dict[str, Any]) -> dict[str, Any]:
    from ..runner import clean_params

    try:
        return clean_params(method, params)
    except ValueError as exc:
        raise ManifestError(str(exc)) from None


def _resolve(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check_name(name: str) -> str:
    if not _NAME_OK.match(name) or len(name) > 200:
        raise ManifestError(f"task name {name!r} cannot be a folder name: use letters, digits "
                            "and . _ = + , - (not starting with . or -)")
    return name
