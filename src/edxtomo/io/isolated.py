"""Run a file reader in a child process, so that a crash there is an error here.

RosettaSciIO's Bruker reader ends the process with a bus error or a
segmentation fault on some damaged files of the right size (measured: a
real .bcf with 4 KiB overwritten in the middle), which no ``try`` can
catch. :class:`IsolatedReader` keeps one spawned child for a whole series
(one HyperSpy import, about a second) and sends it one file at a time; when
the child dies, the file it was reading is reported as damaged, naming the
signal, and the next file gets a fresh child.
"""

from __future__ import annotations

import multiprocessing as mp
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DamagedFileError, InputError
from .damage import signal_name

_JOIN_S = 10.0
_READY = "edxtomo-reader ready"
#: A child that started but died before serving: almost always a script without a main guard,
#: which the spawned child imports again and which then tries to start a reader of its own.
_NOT_STARTED = ("the file reader's child process ended with {how} before it could start. Files are "
                "read in a spawned process that imports the script that called edxtomo again: put "
                "the script's top-level code under `if __name__ == \"__main__\":`")


def _serve(conn: Any) -> None:  # pragma: no cover - runs in the child
    conn.send(_READY)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        fn, args, kwargs = job
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result: tuple = (True, fn(*args, **kwargs))
            except Exception as exc:  # sent to the parent, which raises it
                result = (False, exc)
        notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
                 and "edxtomo" in str(w.filename)]
        try:
            conn.send((*result, notes))
        except Exception as exc:  # an unpicklable result or exception
            conn.send((False, InputError(f"{type(exc).__name__}: {exc}"), notes))


def _ended(code: int | None) -> str:
    """``"a segmentation fault (SIGSEGV)"``, ``"exit status 1"`` or ``"an unknown fault"``."""
    if code is None:
        return "an unknown fault"
    name = signal_name(code)
    return name if name.startswith("exit status") else f"a {name}"


class IsolatedReader:
    """One spawned child that runs reader functions; use as a context manager.

    ``call(path, fn, *args)`` runs ``fn(*args)`` in the child and returns
    its result, raises what it raised, or raises
    :class:`~edxtomo.errors.DamagedFileError` naming ``path`` when the
    child died. Warnings the child's edxtomo code emitted are re-emitted
    here. The child is ended by its own handle in :meth:`close`.
    """

    def __init__(self) -> None:
        self._proc: Any = None
        self._conn: Any = None

    def __enter__(self) -> IsolatedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="edxtomo-reader")
        self._proc.start()
        child.close()
        try:
            ready = self._conn.recv()
        except (EOFError, ConnectionError):
            ready = None
        if ready != _READY:
            raise RuntimeError(_NOT_STARTED.format(how=_ended(self._reap())))

    def call(self, path: str | Path, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        self._conn.send((fn, args, kwargs))
        try:
            ok, value, notes = self._conn.recv()
        except (EOFError, ConnectionError):
            raise DamagedFileError(path, f"the reader crashed with {_ended(self._reap())}") from None
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=2)
        if ok:
            return value
        raise value

    def _reap(self) -> int | None:
        """The exit code of a child that closed its end, once it is gone (None: unknown)."""
        self._proc.join(_JOIN_S)
        code = self._proc.exitcode
        self._discard()
        return code

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(_JOIN_S)
        self._proc = self._conn = None

    def close(self) -> None:
        """Ask the child to end, then end it by its handle if it does not."""
        if self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
            except (OSError, ValueError):
                pass
            self._proc.join(_JOIN_S)
        self._discard()
