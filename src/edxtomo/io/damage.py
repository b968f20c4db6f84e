"""Checks that a file's container is whole before a third-party reader parses it.

A truncated Bruker ``.bcf`` makes RosettaSciIO's reader end the process
with a segmentation fault or a bus error (it maps the file and reads past
its end), or raise ``StopIteration``; a truncated copy can also be read
"successfully" with part of the data missing. These checks read only the
container's own bookkeeping (pure Python, no memory mapping) and raise
:class:`~edxtomo.errors.DamagedFileError` naming the file. For formats
without a check here, :func:`probe_in_child` parses a file in a child
process, so that a crash there becomes an error here.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

from ..errors import DamagedFileError

#: Bytes after the last SFS chunk of a Bruker .bcf (measured on 12 real files).
_SFS_TAIL = 0x118
_SFS_MAGIC = b"AAMVHFSS"
_HDF5_SUFFIXES = (".emd", ".hspy", ".h5", ".hdf5", ".nxs")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def check_container(path: str | Path) -> None:
    """Raise :class:`DamagedFileError` when ``path``'s container is visibly damaged or cut.

    Bruker ``.bcf`` (an SFS container): header, size against the declared
    number of chunks, and every internal file's chunk pointers. HDF5 files
    (``.emd``, ``.hspy``): opened with h5py, which compares the stored end
    of file with the real one. Other formats: only "empty file".
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DamagedFileError(path, "the file is empty")
    suffix = path.suffix.lower()
    if suffix == ".bcf":
        _check_sfs(path, size)
    elif suffix in _HDF5_SUFFIXES:
        _check_hdf5(path)


def _check_sfs(path: Path, size: int) -> None:
    with open(path, "rb") as fh:
        head = fh.read(0x14C)
    if len(head) < 0x14C or head[:8] != _SFS_MAGIC:
        raise DamagedFileError(path, "not a Bruker SFS container: the header is missing or cut")
    _, chunksize = struct.unpack_from("<fI", head, 0x124)
    _, n_items, n_chunks = struct.unpack_from("<III", head, 0x140)
    if chunksize < 0x200 or n_items == 0 or n_chunks == 0:
        raise DamagedFileError(path, "the SFS header holds impossible sizes")
    expected = chunksize * n_chunks + _SFS_TAIL
    if size < expected:
        raise DamagedFileError(path, f"{size} bytes of the {expected} its header declares "
                                     f"({100 * size / expected:.0f} %)")
    try:
        from rsciio.bruker._api import SFS_reader
    except ImportError:  # no RosettaSciIO: nothing will parse the file anyway
        return
    try:
        sfs = SFS_reader(str(path))
    except Exception as exc:  # the pure-Python tree parser raises struct.error, StopIteration, ...
        raise DamagedFileError(path, f"its file table cannot be read: {type(exc).__name__}") from None
    end = _max_pointer_end(sfs.vfs, sfs.usable_chunk)
    if end > size:
        raise DamagedFileError(path, f"an internal file points {end - size} bytes past the end")


def _max_pointer_end(tree: dict, usable: int) -> int:
    end = 0
    for item in tree.values():
        if isinstance(item, dict):
            end = max(end, _max_pointer_end(item, usable))
        elif len(getattr(item, "pointers", ())):
            end = max(end, int(max(item.pointers)) + usable)
    return end


def _check_hdf5(path: Path) -> None:
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic != _HDF5_MAGIC:
        return  # not HDF5 (.hspy may be zarr elsewhere); the reader reports it
    try:
        import h5py
    except ImportError:
        return
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        text = str(exc)
        detail = "the file is shorter than its HDF5 header says" if "truncated" in text else text
        raise DamagedFileError(path, detail) from None


def signal_name(returncode: int) -> str:
    """``"segmentation fault (SIGSEGV)"`` for a child's negative return code."""
    try:
        sig = signal.Signals(-returncode)
    except ValueError:
        return f"exit status {returncode}"
    described = signal.strsignal(sig) or sig.name
    return f"{described.lower()} ({sig.name})"


_PROBE = """
import sys, warnings
warnings.simplefilter("ignore")
import hyperspy.api as hs
loaded = hs.load(sys.argv[1], lazy=True)
for s in (loaded if isinstance(loaded, list) else [loaded]):
    d = s.data
    (d.sum().compute() if hasattr(d, "compute") else d.sum())
"""


def probe_in_child(path: str | Path, timeout: float = 300.0) -> None:
    """Parse ``path`` fully with HyperSpy in a child process; a crash there is an error here.

    Costs a HyperSpy import and one full read (about 1-2 s for a small
    file). The child is started and ended by its own handle.

    Raises
    ------
    DamagedFileError
        The child died of a signal (segfault, bus error), raised, or took
        longer than ``timeout`` seconds.
    """
    path = Path(path)
    proc = subprocess.Popen([sys.executable, "-c", _PROBE, str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONFAULTHANDLER": ""})
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise DamagedFileError(path, f"reading it took longer than {timeout:g} s") from None
    if proc.returncode < 0:
        raise DamagedFileError(path, f"the reader crashed with a {signal_name(proc.returncode)}")
    if proc.returncode != 0:
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        raise DamagedFileError(path, f"the reader failed: {lines[-1] if lines else 'no message'}")


def check_tiff(tif: object, path: str | Path) -> None:
    """Raise :class:`DamagedFileError` when an open ``tifffile.TiffFile`` is cut short.

    tifffile reads what it can of a truncated file (a 17-image ImageJ
    stack cut at 30 % comes back as one image), so the image count of the
    ImageJ header and the data offsets are compared with the file.
    """
    path = Path(path)
    size = path.stat().st_size
    series = tif.series[0]  # type: ignore[attr-defined]
    ij = tif.imagej_metadata or {}  # type: ignore[attr-defined]
    shape = tuple(series.shape)
    n_images = 1
    for n in shape[:-2]:
        n_images *= int(n)
    declared = int(ij.get("images", 0) or 0)
    if declared > n_images:
        raise DamagedFileError(path, f"{n_images} of the {declared} images its ImageJ header declares")
    offset = getattr(series, "dataoffset", None)
    if offset is not None and offset + series.nbytes > size:
        raise DamagedFileError(path, f"the image data ends {offset + series.nbytes - size} bytes "
                                     "past the end of the file")
    for page in tif.pages:  # type: ignore[attr-defined]
        for off, count in zip(getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ()),
                              strict=False):
            if off + count > size:
                raise DamagedFileError(path, f"image data at byte {off} runs past the end of the file")
