"""The Reconstruct dock's "Sweep TV weights as a batch" section.

The dock's current setup (ticked layers, tilt range, dropped tilts, method
and parameters) is swept over a list of TV weights as an ordinary batch
(:mod:`edxtomo.batch.from_setup`): the series is written as a map folder
under the output folder, the tasks run on a local Dask cluster or a given
scheduler from a background thread, and the finished tasks' volumes open as
layers. No numerics here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ...batch.from_setup import (
    SweepSetup,
    check_out_folder,
    check_sweep,
    parse_weights,
    run_sweep,
    shown_task,
    task_label,
    write_sweep,
)
from ...batch.summary import has_result
from .. import settings
from ..layers import META_KEY

SECTION = "sweep"

TIPS = {
    "weights": "TV weights to try, separated by spaces or commas, e.g. 0.01 0.02 0.05: one batch "
               "task each, with the method and parameters set above.",
    "out": "Folder for the sweep: the series (series/), the manifest (sweep.json, which "
           "'edxtomo batch' re-runs), one folder per task and summary.csv. Empty, or an earlier "
           "sweep's folder.",
    "browse": "Choose the output folder.",
    "scheduler": "Address of a running Dask scheduler, e.g. tcp://host:8786 (workers must see the "
                 "output folder at the same path). Empty: a local cluster started for the sweep.",
    "workers": "Worker processes of the local cluster (auto: one per GPU, else one per two cores). "
               "Not used with a scheduler address.",
    "run": "Send the setup above over the TV weights as a batch; the dock stays usable meanwhile.",
    "cancel": "Stop the batch: finished tasks are kept (and opened), the others are not run.",
    "table": "Per task: status, wall time, held-out error (methods that hold tilts out); 'best' "
             "marks the lowest held-out error of the sweep.",
}

COLUMNS = ("task", "status", "time (s)", "held-out", "best")


class SweepPanel(QGroupBox):
    """Sweep the dock's setup over TV weights on Dask; open the results as layers.

    Parameters
    ----------
    viewer
        The napari viewer the volumes open in.
    setup
        Returns the dock's current :class:`SweepSetup` (raises ValueError with the reason).
    report_error
        ``report_error(action, exc)``, the dock's error report (status and notification).
    """

    # Emitted from the batch thread; Qt queues them to the GUI thread.
    tasks_ready = Signal(object)
    task_started = Signal(int, int)
    task_done = Signal(object)
    #: The batch ended: carries its BatchResult (None when it failed before running).
    finished = Signal(object)

    def __init__(self, viewer: Any, setup: Callable[[], SweepSetup],
                 report_error: Callable[[str, Any], Any]) -> None:
        super().__init__("Sweep TV weights as a batch")
        self.viewer = viewer
        self._setup = setup
        self._report_error = report_error
        self.worker: FunctionWorker | None = None
        self.result: Any = None
        self._stop = threading.Event()
        self._rows: dict[str, int] = {}
        self._labels: dict[str, str] = {}
        self._build()
        self.tasks_ready.connect(self._on_tasks)
        self.task_started.connect(self._on_started)
        self.task_done.connect(self._on_task_done)

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        saved = settings.load(SECTION)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.weights = QLineEdit(str(saved.get("weights", "0.01 0.02 0.05")))
        self.weights.setToolTip(TIPS["weights"])
        form.addRow("TV weights", self.weights)
        row = QHBoxLayout()
        self.out_edit = QLineEdit(str(saved.get("out", "")))
        self.out_edit.setPlaceholderText("output folder")
        self.out_edit.setToolTip(TIPS["out"])
        self.browse_btn = QPushButton("…")
        self.browse_btn.setToolTip(TIPS["browse"])
        self.browse_btn.clicked.connect(self._browse)
        row.addWidget(self.out_edit)
        row.addWidget(self.browse_btn)
        form.addRow("output", row)
        self.scheduler = QLineEdit(str(saved.get("scheduler", "")))
        self.scheduler.setPlaceholderText("local cluster")
        self.scheduler.setToolTip(TIPS["scheduler"])
        form.addRow("scheduler", self.scheduler)
        self.workers = QSpinBox()
        self.workers.setRange(0, 256)
        self.workers.setSpecialValueText("auto")
        self.workers.setValue(int(saved.get("workers", 0) or 0))
        self.workers.setToolTip(TIPS["workers"])
        form.addRow("workers", self.workers)
        layout.addLayout(form)
        self.scheduler.textChanged.connect(
            lambda text: self.workers.setEnabled(not text.strip()))
        self.workers.setEnabled(not self.scheduler.text().strip())

        buttons = QHBoxLayout()
        self.run_btn, self.cancel_btn = QPushButton("Run sweep"), QPushButton("Cancel")
        self.run_btn.setToolTip(TIPS["run"])
        self.cancel_btn.setToolTip(TIPS["cancel"])
        self.run_btn.clicked.connect(self.run)
        self.cancel_btn.clicked.connect(self.cancel)
        self.cancel_btn.setEnabled(False)
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.cancel_btn)
        layout.addLayout(buttons)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v / %m tasks")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        layout.addWidget(self.progress_bar)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setToolTip(TIPS["table"])
        self.table.setMaximumHeight(160)
        layout.addWidget(self.table)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Sweep output folder", self.out_edit.text())
        if path:
            self.out_edit.setText(path)

    def save_settings(self) -> None:
        settings.save(SECTION, {"weights": self.weights.text(), "out": self.out_edit.text(),
                                "scheduler": self.scheduler.text(), "workers": self.workers.value()})

    # ------------------------------------------------------------------ run
    @property
    def running(self) -> bool:
        return self.worker is not None

    def run(self) -> None:
        """Check the setup and start the batch on a background thread."""
        if self.running:
            self._report_error("sweep", "a sweep is already running: cancel it first")
            return
        try:
            setup = self._setup()
            weights = parse_weights(self.weights.text())
            check_sweep(setup, weights)
            out = check_out_folder(self.out_edit.text())
        except Exception as exc:  # a message for the user, whatever the cause
            self._report_error("sweep", exc)
            return
        self.save_settings()
        self.result = None
        self._stop = threading.Event()
        self._rows, self._labels = {}, {}
        self.table.setRowCount(0)
        self.progress_bar.setRange(0, len(weights))
        self.progress_bar.setValue(0)
        scheduler = self.scheduler.text().strip() or None
        workers = self.workers.value() or None
        where = scheduler or "a local cluster"
        self.status.setText(f"writing the series and starting {where}…")
        worker = create_worker(self._job, setup, weights, out, scheduler, workers, self._stop,
                               _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        worker.start()

    def _job(self, setup: SweepSetup, weights: list[float], out: Path, scheduler: str | None,
             workers: int | None, stop: threading.Event) -> Any:
        """On the worker thread: write the series and manifest, run the batch."""
        tasks = write_sweep(setup, weights, out)
        self.tasks_ready.emit(tasks)
        return run_sweep(tasks, out, scheduler=scheduler, workers=workers, stop=stop,
                         on_start=self.task_started.emit, on_done=self.task_done.emit)

    def cancel(self) -> None:
        """Stop the batch; finished tasks are kept and opened."""
        if not self.running:
            return
        self._stop.set()
        self.cancel_btn.setEnabled(False)
        self.status.setText("cancelling: finished tasks are kept…")

    # ---------------------------------------------------------- GUI thread
    def _on_tasks(self, tasks: list[Any]) -> None:
        self._labels = {t.name: task_label(t.method, t.grid_point) for t in tasks}
        self.table.setRowCount(len(tasks))
        for i, t in enumerate(tasks):
            self._rows[t.name] = i
            self._set_row({"task": t.name, "status": "queued"})
        self.table.resizeColumnsToContents()

    def _on_started(self, n_todo: int, _skipped: int) -> None:
        self.progress_bar.setRange(0, max(n_todo, 1))
        if not self._stop.is_set():
            self.status.setText(f"running {n_todo} task(s) on "
                                f"{self.scheduler.text().strip() or 'a local cluster'}…")

    def _on_task_done(self, row: dict[str, Any]) -> None:
        self.progress_bar.setValue(self.progress_bar.value() + 1)
        self._set_row(row)

    def _set_row(self, row: dict[str, Any]) -> None:
        i = self._rows.get(str(row.get("task")))
        if i is None:
            return
        held = row.get("heldout")
        wall = row.get("wall_s")
        status = str(row.get("status", ""))
        if status == "failed" and row.get("error"):
            status = f"failed: {row['error']}"
        cells = (str(row.get("task", "")), status,
                 f"{wall:.1f}" if isinstance(wall, (int, float)) else "",
                 f"{held:.4g}" if isinstance(held, (int, float)) else "",
                 "best" if row.get("best_in_sweep") else "")
        for j, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            self.table.setItem(i, j, item)

    def _on_returned(self, result: Any) -> None:
        self.result = result
        for row in result.rows:
            self._set_row(row)
        self.table.resizeColumnsToContents()
        opened = self.open_results(result.rows)
        n_ok = sum(has_result(r) for r in result.rows)
        text = f"{n_ok} of {len(result.rows)} task(s) finished"
        if result.interrupted:
            text += f"; cancelled: {', '.join(result.not_finished) or 'none'} not finished"
        if result.failed:
            text += f"; failed: {', '.join(result.failed)}"
        shown = shown_task(result.rows)
        if shown:
            text += f"; shown: {self._labels.get(shown, shown)}"
        self.status.setText(text + f" ({len(opened)} layer(s) opened)")
        show_info(f"TV-weight sweep: {text}")

    def _on_error(self, exc: BaseException) -> None:
        self.status.setText("sweep failed")
        self._report_error("sweep", exc)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.finished.emit(self.result)

    # -------------------------------------------------------------- layers
    def open_results(self, rows: list[dict[str, Any]]) -> list[str]:
        """Open each finished task's volumes as ``"<element> [<method> tv_weight=<w>]"``.

        Only the best held-out task's volumes are visible (else the first
        finished task's); layers of the same name from an earlier sweep are
        replaced. Returns the names of the layers opened.
        """
        from .._reader import read_reconstruction

        shown = shown_task(rows)
        names = []
        for row in rows:
            if not has_result(row) or not row.get("output"):
                continue
            label = self._labels.get(row["task"], row["task"])
            try:
                layer_data = read_reconstruction(str(row["output"]))
            except Exception as exc:  # a folder removed meanwhile: say so, open the others
                self._report_error(f"opening {row['task']}", exc)
                continue
            for data, kwargs, _ in layer_data:
                meta = kwargs["metadata"][META_KEY]
                name = f"{meta['element']} [{label}]"
                meta["batch_task"] = row["task"]
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
                self.viewer.add_image(data, **{**kwargs, "name": name,
                                               "visible": row["task"] == shown})
                names.append(name)
        return names
