"""X-ray line maps from EDS spectrum images, on exspy.

Line choice, energies, widths and the counting itself are exspy's: the
proposal is what ``add_lines()`` makes of the elements in the metadata,
integration windows are ``estimate_integration_windows`` (a multiple of the
line FWHM at the detector resolution), background windows are
``estimate_background_windows``, and the maps are ``get_lines_intensity``
with those windows. Nothing here holds an X-ray table of its own.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class LineError(ValueError):
    """An X-ray line name is invalid or not measurable in the spectrum."""


@dataclass(frozen=True)
class LineWindow:
    """Integration (and optional background) windows of one line, in the energy-axis units."""

    line: str
    energy: float
    integration: tuple[float, float]
    background: tuple[float, float, float, float] | None = None

    @property
    def element(self) -> str:
        return element_of(self.line)

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "energy": self.energy, "integration": list(self.integration),
                "background": None if self.background is None else list(self.background)}


def element_of(line: str) -> str:
    """``"Fe_Ka"`` -> ``"Fe"``."""
    return line.split("_", 1)[0]


def _elements_db():
    from exspy.material import elements

    return elements


def _energy_axis(signal):
    return signal.axes_manager.signal_axes[0]


def _to_axis_units(signal, kev: float) -> float:
    return kev * 1000.0 if _energy_axis(signal).units == "eV" else kev


def _beam_energy(signal) -> float | None:
    for key in ("Acquisition_instrument.TEM.beam_energy", "Acquisition_instrument.SEM.beam_energy"):
        value = signal.metadata.get_item(key)
        if value is not None:
            return _to_axis_units(signal, float(value))
    return None


def line_energy(line: str) -> float:
    """Energy of ``line`` in keV from exspy's database; :class:`LineError` if unknown."""
    el, _, shell = line.partition("_")
    db = _elements_db()
    if el not in db:
        raise LineError(f"{line!r}: {el!r} is not a chemical element symbol")
    shells = db[el].Atomic_properties.Xray_lines
    if not shell or shell not in shells:
        known = ", ".join(f"{el}_{s}" for s in shells.keys()) if shells else "none"
        raise LineError(f"{line!r} is not an X-ray line of {el} (known: {known})")
    return float(shells[shell].energy_keV)


def available_lines(signal) -> dict[str, list[tuple[str, float]]]:
    """All lines of the metadata's elements inside the spectrum's energy range.

    Returns ``{element: [(line, energy_keV), ...]}`` sorted by energy; the GUI
    offers these for adding.
    """
    ax = _energy_axis(signal)
    high = ax.high_value
    beam = _beam_energy(signal)
    if beam is not None:
        high = min(high, beam)
    db = _elements_db()
    out: dict[str, list[tuple[str, float]]] = {}
    for el in signal.metadata.get_item("Sample.elements", []) or []:
        if el not in db:
            continue
        found = []
        for shell in db[el].Atomic_properties.Xray_lines.keys():
            e = line_energy(f"{el}_{shell}")
            if ax.low_value < _to_axis_units(signal, e) < high:
                found.append((f"{el}_{shell}", e))
        out[el] = sorted(found, key=lambda t: t[1])
    return out


def _probe(signal):
    """A one-spectrum copy with the same energy axis and metadata, safe to modify."""
    from exspy.signals import EDSSEMSpectrum, EDSTEMSpectrum

    cls = EDSSEMSpectrum if signal.metadata.Signal.signal_type == "EDS_SEM" else EDSTEMSpectrum
    ax = _energy_axis(signal)
    return cls(np.zeros(ax.size, dtype=np.float32), axes=[ax.get_axis_dictionary()],
               metadata=copy.deepcopy(signal.metadata.as_dictionary()))


def propose_lines(signal) -> list[str]:
    """One line per element: the lines stored with the data, else exspy's choice.

    exspy's ``add_lines()`` keeps ``Sample.xray_lines`` written by the
    acquisition software and picks, for every other element of
    ``Sample.elements``, the highest-energy line below half the beam energy.
    Lines outside the recorded energy range are dropped.
    """
    probe = _probe(signal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-range lines: dropped below
        if probe.metadata.get_item("Sample.elements") or probe.metadata.get_item("Sample.xray_lines"):
            probe.add_lines()
    proposed = list(probe.metadata.get_item("Sample.xray_lines", []) or [])
    in_range = {ln for lines in available_lines(probe).values() for ln, _ in lines}
    return [ln for ln in proposed if ln in in_range]


def resolve_lines(signal, lines: Sequence[str] | None = None, *, add: Sequence[str] = (),
                  drop: Sequence[str] = ()) -> list[str]:
    """The lines to map: ``lines`` (or the proposal), plus ``add``, minus ``drop``.

    An entry may be a line (``"Fe_Ka"``) or an element (``"Fe"``: exspy's
    choice of line for it). ``drop`` accepts lines or elements. One line per
    element, because maps are keyed by element.
    """
    chosen = list(propose_lines(signal) if lines is None else lines) + list(add)
    out: list[str] = []
    for item in chosen:
        line = item if "_" in item else _line_for_element(signal, item)
        line_energy(line)  # validates the name
        if line not in out:
            out.append(line)
    drops = set(drop)
    out = [ln for ln in out if ln not in drops and element_of(ln) not in drops]
    ax = _energy_axis(signal)
    for ln in out:
        e = _to_axis_units(signal, line_energy(ln))
        if not ax.low_value < e < ax.high_value:
            raise LineError(f"{ln} ({line_energy(ln):g} keV) is outside the recorded energy range "
                            f"{ax.low_value:g}..{ax.high_value:g} {ax.units}")
    seen: dict[str, str] = {}
    for ln in out:
        el = element_of(ln)
        if el in seen:
            raise LineError(f"two lines for {el} ({seen[el]}, {ln}): maps are per element, keep one")
        seen[el] = ln
    if not out:
        raise LineError("no X-ray lines to map: the metadata names no elements; pass lines "
                        "such as Fe_Ka")
    return out


def _line_for_element(signal, element: str) -> str:
    db = _elements_db()
    if element not in db:
        raise LineError(f"{element!r} is neither a chemical element nor a line such as Fe_Ka")
    probe = _probe(signal)
    if probe.metadata.has_item("Sample.xray_lines"):
        del probe.metadata.Sample.xray_lines
    probe.metadata.set_item("Sample.elements", [element])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe.add_lines()
    lines = list(probe.metadata.get_item("Sample.xray_lines", []) or [])
    if not lines:
        raise LineError(f"{element} has no X-ray line in the recorded energy range")
    return lines[0]


def line_windows(
    signal,
    lines: Sequence[str],
    *,
    integration_windows: float | Mapping[str, Sequence[float]] = 2.0,
    background: bool | Mapping[str, Sequence[float]] = False,
    background_line_width: tuple[float, float] = (2.0, 2.0),
    background_width: float = 1.0,
) -> list[LineWindow]:
    """Integration and background windows per line, as exspy estimates them.

    Parameters
    ----------
    integration_windows
        A width in units of the line FWHM (exspy's ``windows_width``; 2 by
        default) or explicit ``{line: (low, high)}`` in the energy-axis units.
    background
        ``False``: no background subtraction; ``True``: exspy's
        ``estimate_background_windows``; or explicit
        ``{line: (l0, l1, r0, r1)}``.
    """
    lines = list(lines)
    if isinstance(integration_windows, Mapping):
        iw = [tuple(map(float, integration_windows[ln])) for ln in lines]
    else:
        iw = [tuple(w) for w in signal.estimate_integration_windows(
            windows_width=float(integration_windows), xray_lines=lines)]
    if background is True:
        bw = [tuple(map(float, w)) for w in signal.estimate_background_windows(
            line_width=list(background_line_width), windows_width=background_width,
            xray_lines=lines)]
    elif isinstance(background, Mapping):
        bw = [tuple(map(float, background[ln])) for ln in lines]
    else:
        bw = [None] * len(lines)
    return [LineWindow(ln, line_energy(ln), (float(w[0]), float(w[1])), b)  # type: ignore[arg-type]
            for ln, w, b in zip(lines, iw, bw, strict=True)]


def extract_line_maps(signal, windows: Sequence[LineWindow], *,
                      with_total: bool = False) -> tuple[dict[str, np.ndarray], float | None, int]:
    """Line maps ``{element: (ny, nx) float32}`` with exspy's ``get_lines_intensity``.

    All windows of a lazy signal are computed in one pass, so a file is read
    (or a Bruker hypermap parsed) once. Background-subtracted maps are
    clipped at zero, because maps are counts.

    Returns
    -------
    maps, total, clipped
        The maps, the total counts of the spectrum image (when
        ``with_total``) and the number of clipped negative pixels.
    """
    import dask

    lines = [w.line for w in windows]
    use_bg = any(w.background is not None for w in windows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        images = signal.get_lines_intensity(
            xray_lines=lines,
            integration_windows=[list(w.integration) for w in windows],
            background_windows=[list(w.background) for w in windows] if use_bg else None,
        )
    arrays = [img.data for img in images]
    if with_total:
        arrays.append(signal.data.sum())
    if signal._lazy:
        arrays = list(dask.compute(*arrays))
    total = float(arrays.pop()) if with_total else None
    maps: dict[str, np.ndarray] = {}
    clipped = 0
    for w, arr in zip(windows, arrays, strict=True):
        arr = np.asarray(arr, dtype=np.float64)
        neg = arr < 0
        clipped += int(neg.sum())
        maps[w.element] = np.where(neg, 0.0, arr).astype(np.float32)
    return maps, total, clipped
