"""One reconstruction run in the GUI: worker thread, streaming, progress, errors.

The widget asks :class:`RunController` to start a run and listens to its
signals; the controller owns the thread and never lets a failure lose the
volumes already shown.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal

from ...recon import RunControl, reconstruct
from ...recon.snapshot import Snapshot
from ...recon.status import RunStatus, StopReason
from ...runner import RunRecord
from ..layers import RunRef, method_label
from ..streaming import ThrottledStreamer, VolumeStreamer

#: Seconds between updates of napari's own progress bar (activity dock).
NAPARI_PROGRESS_INTERVAL_S = 1.0


def stoppable(gen: Iterator[Snapshot], control: RunControl) -> Iterator[Snapshot]:
    """Yield from ``gen`` until a stop is requested, then close it on the worker thread.

    Methods that take ``control`` end themselves one iteration after the
    request; for the others (e.g. tomopy's) this check ends the run at their
    next snapshot. Checking here rather than with ``worker.quit()``, which
    abandons the generator mid-way, lets ``gen.close()`` run its own clean-up,
    e.g. freeing GPU memory, in the thread that used it.
    """
    try:
        for snap in gen:
            yield snap
            if control.stop_requested:
                return
    finally:
        gen.close()


class RunController(QObject):
    """Runs one reconstruction at a time.

    Signals
    -------
    updated(object)
        A snapshot was shown (at most a few times per second).
    progressed(int, int, float)
        Iteration, total and estimated seconds left (-1: unknown), on each
        timer tick where the run advanced, between snapshots too.
    finished(object)
        The run ended (finished, stopped or failed); carries its :class:`RunRecord`.
    """

    updated = Signal(object)
    progressed = Signal(int, int, float)
    finished = Signal(object)

    def __init__(self, viewer: Any, interval_ms: int = 150, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.interval_ms = interval_ms
        self.record: RunRecord | None = None
        self.ref = RunRef("", {})
        self.worker: GeneratorWorker | None = None
        self.control: RunControl | None = None
        self._shown_iteration = 0
        self._pbar_shown = 0.0
        self._throttle: ThrottledStreamer | None = None
        self._streamer: VolumeStreamer | None = None
        self._pbar: progress | None = None

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, record: RunRecord) -> None:
        """Start ``record``'s run on a worker thread (refused while one runs)."""
        if self.running:
            raise RuntimeError("a reconstruction is already running: stop it first")
        self.record = record
        self.control = RunControl()
        self._shown_iteration = 0
        self._pbar_shown = 0.0
        series = record.series
        self.ref = RunRef(record.method, dict(record.params), record.sidecar())
        self._streamer = VolumeStreamer(self.viewer, record.method, series.elements,
                                        series.pixel_size, {"run": self.ref})
        self._throttle = ThrottledStreamer(self._show, self.interval_ms, parent=self,
                                           on_tick=self._report_progress)
        label = method_label(record.method)
        self._pbar = progress(total=int(record.params.get("iterations", 0)) or None,
                              desc=f"{label} reconstruction")
        gen = reconstruct(series, record.method, control=self.control, time_limit=record.time_limit,
                          **record.params)
        worker = create_worker(stoppable, gen, self.control, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._throttle.start()
        worker.start()

    def stop(self) -> None:
        """Ask the run to end after its current iteration; its latest volumes are kept.

        Methods that take a :class:`RunControl` yield a final snapshot one
        iteration later; others end at their next snapshot.
        """
        if self.record is not None and self.running:
            self.record.status = RunStatus.STOPPED
            if self.control is not None:
                self.control.request_stop()

    # ---------------------------------------------------------- main thread
    def _on_yielded(self, snap: Snapshot) -> None:
        # Cheap: record the losses and park the snapshot; drawing waits for the timer.
        assert self.record is not None and self._throttle is not None
        self.record.add(snap)
        self._throttle.submit(snap)

    def _show(self, snap: Snapshot) -> None:
        assert self._streamer is not None and self.record is not None
        self._streamer.apply(snap)
        # The sidecar the layers carry describes the volumes they now show.
        self.ref.sidecar = self.record.sidecar()
        self.updated.emit(snap)

    def _report_progress(self) -> None:
        control = self.control
        if control is None or control.iteration == self._shown_iteration:
            return
        self._shown_iteration = it = control.iteration
        left = control.seconds_left()
        self.progressed.emit(it, control.total, -1.0 if left is None else left)
        # napari's activity-dock bar calls processEvents() on every update,
        # which costs a full repaint pass: once a second is enough there (the
        # dock's own bar follows every tick). Last, because that nested event
        # processing may run the worker's ``finished`` handler re-entrantly.
        now = time.perf_counter()
        if self._pbar is not None and now - self._pbar_shown >= NAPARI_PROGRESS_INTERVAL_S:
            self._pbar_shown = now
            self._pbar.total = control.total
            self._pbar.update(it - self._pbar.n)

    def _on_error(self, exc: BaseException) -> None:
        rec = self.record
        if rec is None:
            return
        rec.status, rec.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        kept = f"; kept the volumes of iteration {rec.last.iteration}" if rec.last else ""
        show_error(f"{method_label(rec.method)} failed: {exc}{kept}")

    def _on_finished(self) -> None:
        rec = self.record
        if self._throttle is not None:
            self._throttle.stop()  # shows the last snapshot received
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        if rec is not None:
            if rec.status == RunStatus.RUNNING:
                rec.status = RunStatus.after(rec.last.stopped if rec.last else "")
                if rec.status == RunStatus.FAILED:
                    rec.error = rec.last.stopped
                    show_error(f"{method_label(rec.method)} failed: {rec.error}; kept the last "
                               f"finite volumes (iteration {rec.last.iteration})")
            self.ref.sidecar = rec.sidecar()  # with the final status
            if rec.status != RunStatus.FAILED and rec.last is not None:
                show_info(finished_note(rec))
        self.finished.emit(rec)


def finished_note(rec: RunRecord) -> str:
    """The notification of a run that ended with a result: how far, how long, why, what was chosen."""
    last = rec.last
    assert last is not None
    sweep = " (weight sweep included)" if last.info.get("weight_choice") else ""
    text = (f"{method_label(rec.method)}: {rec.status} after {last.iteration} iterations{sweep}, "
            f"{last.elapsed_s:.1f} s")
    if rec.status == RunStatus.FINISHED and last.stopped == StopReason.EARLY_STOPPING:
        text += f" ({StopReason.EARLY_STOPPING}: the held-out error stopped falling)"
    return text + "".join(f"; {note}" for note in last.notes())
