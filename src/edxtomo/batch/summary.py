"""``summary.csv`` and ``summary.json`` of a batch, with the best setting of each sweep marked."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io.atomic import write_atomic, write_json

CSV_COLUMNS = ("task", "status", "best_in_sweep", "method", "wall_s", "device", "iterations",
               "heldout", "loss_data", "loss_tv", "loss_total", "output", "error")


#: Statuses of a task whose folder holds a result that stands.
RESULT_STATUSES = ("finished", "time limit")


def has_result(row: dict[str, Any]) -> bool:
    """The task ended with a result (now, or in an earlier batch that ``--resume`` skipped)."""
    status = str(row.get("status", ""))
    return status in RESULT_STATUSES or status.startswith("skipped")


def held_counts(info: dict[str, Any]) -> list[float] | None:
    """``[fraction, seed]`` of the counts a DIP run held out (None: none)."""
    if not info.get("heldout_counts"):
        return None
    return [float(info["heldout_counts"]), int(info.get("heldout_counts_seed", 0))]


def mark_best(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``best_in_sweep`` on the finished task of each sweep with the lowest held-out error.

    Only tasks whose held-out errors are comparable compete: the same sweep
    (one manifest entry over one series), the same held-out tilts or the same
    held-out counts (fraction and seed) and the same data term (Gaussian or
    Poisson). Methods without held-out data (SIRT, TV) are never marked.
    """
    out = [{**r, "best_in_sweep": False} for r in rows]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in out:
        h = r.get("heldout")
        if (not r.get("sweep") or not has_result(r) or h is None or not math.isfinite(float(h))):
            continue
        key = (r["sweep"], tuple(r.get("heldout_angles") or ()), tuple(r.get("heldout_counts") or ()),
               r.get("loss"))
        groups.setdefault(key, []).append(r)
    for members in groups.values():
        if len(members) > 1:
            min(members, key=lambda r: float(r["heldout"]))["best_in_sweep"] = True
    return out


def _csv_row(r: dict[str, Any]) -> dict[str, Any]:
    losses = r.get("losses") or {}
    row = {k: r.get(k, "") for k in CSV_COLUMNS}
    row.update(loss_data=losses.get("data", ""), loss_tv=losses.get("tv", ""),
               loss_total=losses.get("total", ""), heldout=r.get("heldout") if r.get("heldout")
               is not None else "", best_in_sweep="yes" if r.get("best_in_sweep") else "")
    return {k: ("" if v is None else v) for k, v in row.items()}


def write_summary(out_root: str | Path, rows: Sequence[dict[str, Any]]) -> tuple[Path, Path]:
    """Write ``summary.json`` (every field) and ``summary.csv`` (one line per task), atomically."""
    out = Path(out_root)
    marked = mark_best(rows)
    json_path = write_json(out / "summary.json", {"format": "edxtomo-batch/1", "tasks": marked})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in marked:
        writer.writerow(_csv_row(r))
    text = buf.getvalue()
    csv_path = write_atomic(out / "summary.csv", lambda p: p.write_text(text, encoding="utf-8"))
    return csv_path, json_path
