"""Widget settings kept between napari sessions, as one JSON file.

The folder is ``$EDXTOMO_SETTINGS_DIR`` when set (tests point it at a
temporary folder), else the user's configuration folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs

ENV_VAR = "EDXTOMO_SETTINGS_DIR"
FILE_NAME = "napari-widgets.json"


def settings_dir() -> Path:
    """Where settings live (created on first write)."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(platformdirs.user_config_dir("edxtomo"))


def _path() -> Path:
    return settings_dir() / FILE_NAME


def _read_all() -> dict[str, Any]:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        # A missing or damaged file means defaults, never a widget that fails to open.
        return {}
    return data if isinstance(data, dict) else {}


def load(section: str) -> dict[str, Any]:
    """Saved values of one widget (empty when none)."""
    value = _read_all().get(section, {})
    return value if isinstance(value, dict) else {}


def save(section: str, values: dict[str, Any]) -> None:
    """Replace the saved values of one widget; failures to write are not fatal."""
    data = _read_all()
    data[section] = values
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
