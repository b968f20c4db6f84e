"""Output folders that never mix runs, never half-exist and never swallow the input.

- :func:`check_output_folder` runs before any computation and refuses a
  file, a path under a file, an unwritable place, the input folder (or a
  folder inside it, or one holding the input) and a non-empty folder that
  edxtomo did not write.
- :func:`replace_folder` writes a whole result into a fresh sibling folder
  and swaps it in when complete, so the previous result stays intact until
  then; signals are held off during the two renames.
- :class:`OutputLock` (a file ``.<name>.lock`` beside the folder with PID,
  host, command and start time) refuses a second concurrent run into the
  same folder, naming the running one; a lock whose process is dead is
  taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..errors import OutputError
from .vocabulary import has_glob

T = TypeVar("T")
#: Files a folder written by edxtomo holds; anything else there is the user's.
RESULT_SUFFIXES = (".tif", ".tiff", ".json", ".txt", ".pt", ".png", ".csv", ".npy", ".npz", ".rawtlt", ".tlt")
#: Files whose presence says "edxtomo wrote this folder".
RESULT_MARKERS = ("reconstruction.json", "series.json")
PARTIAL_SUFFIX = ".partial"
_held: dict[Path, int] = {}
_held_lock = threading.Lock()


# ------------------------------------------------------------------ checking
def _input_folders(inputs: Iterable[str | Path]) -> list[Path]:
    out = []
    for item in inputs:
        p = Path(item)
        if has_glob(item) and not p.exists():
            p = p.parent
        elif p.is_file():
            p = p.parent
        out.append(p.resolve())
    return out


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def foreign_files(folder: Path) -> list[str]:
    """Names in ``folder`` that edxtomo would not have written (hidden files aside)."""
    names = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            if any(m.is_file() for m in (p / n for n in RESULT_MARKERS)):
                continue  # ground_truth/ and other result subfolders
            names.append(p.name + "/")
        elif p.suffix.lower() not in RESULT_SUFFIXES:
            names.append(p.name)
    return names


def check_output_folder(out: str | Path, inputs: Iterable[str | Path] = (),
                        resume: str | Path | None = None) -> Path:
    """Refuse an output folder that cannot or must not take a result; return it resolved.

    ``resume``: the folder a run resumes from; its ``<out>.partial`` is then expected.

    Raises
    ------
    OutputError
        One line naming ``out`` and the reason.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file, not a folder; choose a folder for the output")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != out and not existing.is_dir():
        raise OutputError(f"{out}: {existing} is a file, so no folder can be made under it")
    # The swap and the lock need the parent; an existing folder is replaced, so it counts too.
    places = [existing if existing != out else out.parent] + ([out] if out.is_dir() else [])
    for place in places:
        if not os.access(place, os.W_OK | os.X_OK):
            raise OutputError(f"{out}: cannot write in {place} (permission denied); choose another folder")
    resolved = out.resolve()
    for folder in _input_folders(inputs):
        if _is_within(resolved, folder):
            raise OutputError(f"{out}: is the input folder {folder} or inside it; the result would "
                              "mix with (or overwrite) the input. Choose a folder outside it")
        if _is_within(folder, resolved):
            raise OutputError(f"{out}: holds the input {folder}; writing the result there would "
                              "replace the input. Choose another folder")
    if out.is_dir() and any(out.iterdir()):
        foreign = foreign_files(out)
        marked = any((out / m).is_file() for m in RESULT_MARKERS)
        if foreign or not marked:
            listed = ", ".join((foreign or sorted(p.name for p in out.iterdir()))[:5])
            raise OutputError(f"{out}: holds files edxtomo did not write ({listed}); the result "
                              "replaces the folder's contents, so choose an empty or new folder")
    partial = partial_dir(out)
    resuming = resume is not None and Path(resume).resolve() == partial.resolve()
    if partial.is_dir() and not resuming and not _locked_by_live_process(out):
        raise OutputError(f"{partial}: an interrupted run left its last checkpoint there; resume it "
                          f"or move it away before writing to {out}")
    return resolved


def partial_dir(out: str | Path) -> Path:
    """``<out>.partial``: where a run keeps its checkpoints until it ends."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


# ------------------------------------------------------------------ swapping
@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold off SIGINT/SIGTERM/SIGHUP (delivered afterwards) in the main thread."""
    sigs = {signal.SIGINT, signal.SIGTERM} | ({signal.SIGHUP} if hasattr(signal, "SIGHUP") else set())
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def replace_folder(target: str | Path, writer: Callable[[Path], T]) -> T:
    """Call ``writer(stage)`` on a fresh sibling folder, then swap it in as ``target``.

    ``target`` keeps its previous contents until ``writer`` has returned;
    if ``writer`` raises (or is interrupted), the stage is removed and
    ``target`` is untouched. The old contents are deleted after the swap.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage = target.with_name(f".{target.name}.stage-{tag}")
    old = target.with_name(f".{target.name}.old-{tag}")
    stage.mkdir()
    try:
        result = writer(stage)
        _chmod_like_mkdir(stage)
        with _signals_held():
            if target.exists():
                os.rename(target, old)
            try:
                os.rename(stage, target)
            except BaseException:
                if old.exists():
                    os.rename(old, target)
                raise
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return result


def _chmod_like_mkdir(folder: Path) -> None:
    from .atomic import current_umask

    os.chmod(folder, 0o777 & ~current_umask())


def finish_partial(out: str | Path) -> None:
    """Remove ``<out>.partial`` once the final result is in ``out``."""
    shutil.rmtree(partial_dir(out), ignore_errors=True)


# ------------------------------------------------------------------ locking
def lock_path(out: str | Path) -> Path:
    out = Path(out).absolute()
    return out.with_name(f".{out.name}.lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(out: str | Path) -> dict[str, Any] | None:
    """The lock's record, or ``None`` when there is no readable lock."""
    try:
        return json.loads(lock_path(out).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _locked_by_live_process(out: Path) -> bool:
    info = read_lock(out)
    return bool(info) and info.get("host") == socket.gethostname() and _pid_alive(int(info.get("pid", 0)))


class OutputLock:
    """Hold ``out`` for one run: a second run into it is refused, naming this one.

    Re-entrant within one process (the CLI and the runner may both hold it).
    """

    def __init__(self, out: str | Path, command: str | None = None) -> None:
        self.out = Path(out).absolute()
        self.path = lock_path(self.out)
        self.command = command or " ".join(["edxtomo", *sys.argv[1:]])

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        with _held_lock:
            if self.path in _held:
                _held[self.path] += 1
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            for _ in range(2):
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    self._refuse_or_take_over()
                    continue
                except OSError as exc:
                    raise OutputError(f"{self.out}: cannot create the lock {self.path} ({exc.strerror})") from None
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(record, fh)
                _held[self.path] = 1
                return
            raise OutputError(f"{self.out}: another run took the lock {self.path} at the same moment")

    def _refuse_or_take_over(self) -> None:
        info = read_lock(self.out)
        if info is None:  # written this instant, or unreadable: look once more
            time.sleep(0.2)
            info = read_lock(self.out)
        if info is not None:
            same_host = info.get("host") == socket.gethostname()
            if not same_host or _pid_alive(int(info.get("pid", 0))):
                where = "" if same_host else f" on {info.get('host')} (delete {self.path} if it is gone)"
                raise OutputError(
                    f"{self.out}: another edxtomo run is writing there: PID {info.get('pid')}{where}, "
                    f"`{info.get('command')}`, started {info.get('started')}; wait for it or choose "
                    "another folder")
        # A dead process's lock (or an unreadable one): take it over.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def release(self) -> None:
        with _held_lock:
            count = _held.get(self.path, 0)
            if count > 1:
                _held[self.path] = count - 1
                return
            _held.pop(self.path, None)
        info = read_lock(self.out)
        if info and info.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def release_all() -> None:
    """Release every lock this process holds (the command line calls it when a command ends)."""
    with _held_lock:
        paths = list(_held)
        _held.clear()
    for path in paths:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()
