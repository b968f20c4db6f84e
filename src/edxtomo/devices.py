"""Choosing the torch device: ``auto`` prefers CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch

from .errors import EdxtomoError

DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(EdxtomoError, RuntimeError):
    """The requested compute device does not exist on this machine (also a ``RuntimeError``)."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Devices usable here, best first (always ends with ``"cpu"``)."""
    found = []
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found + ["cpu"]


def describe_devices() -> str:
    """One line per device, for GUIs and ``--help``."""
    lines = []
    for dev in available_devices():
        if dev.startswith("cuda"):
            props = torch.cuda.get_device_properties(int(dev.split(":")[1]))
            lines.append(f"{dev}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
        elif dev == "mps":
            lines.append("mps: Apple GPU")
        else:
            lines.append(f"cpu: {torch.get_num_threads()} threads")
    return "\n".join(lines)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda[:i]|mps`` into a :class:`torch.device`.

    Raises
    ------
    DeviceError
        If the device is unknown or absent (``auto`` never fails: it falls back to CPU).
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                "device 'cuda' was requested but torch sees no CUDA GPU on this machine "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None}); "
                "use --device auto or cpu, or install a CUDA build of torch"
            )
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA GPU(s) found"
            )
        return dev
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' was requested but no Apple GPU is available")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
