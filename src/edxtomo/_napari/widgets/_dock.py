"""What every edxtomo dock shares: a scroll area, a "what is this" text, status lines.

Docks put their inputs in :attr:`DockBase.body` (a plain ``QVBoxLayout``)
and report with :meth:`DockBase.report_error`, which writes the cause to
the dock's status *and* a notification, cause first.
"""

from __future__ import annotations

import re
from typing import Any

from napari.utils.notifications import show_error
from qtpy.QtCore import QSize
from qtpy.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

#: Docks are laid out for screens this high (with napari's own chrome).
SCREEN_HEIGHT_PX = 1000


def input_widgets(root: QWidget) -> list[QWidget]:
    """Every user input below ``root`` (line edits, spin boxes, combos, checks, tables, buttons)."""
    from qtpy.QtWidgets import (
        QAbstractButton,
        QAbstractItemView,
        QAbstractSpinBox,
        QComboBox,
        QHeaderView,
        QLineEdit,
    )

    kinds = (QLineEdit, QAbstractSpinBox, QComboBox, QAbstractButton, QAbstractItemView)
    out = []
    for w in root.findChildren(QWidget):
        if not isinstance(w, kinds) or isinstance(w, QHeaderView) or w.parent() is None:
            continue
        if _inside(w, (QComboBox, QAbstractSpinBox)):
            continue  # the line edit or popup list of a combo or spin box
        if type(w).__name__ in ("QScrollBar",) or w.objectName().startswith("qt_"):
            continue
        out.append(w)
    return out


def _inside(widget: QWidget, kinds: tuple[type, ...]) -> bool:
    parent = widget.parent()
    while parent is not None:
        if isinstance(parent, kinds):
            return True
        parent = parent.parent()
    return False


class DockBase(QWidget):
    """A dock whose content scrolls when the screen is short.

    Parameters
    ----------
    about
        Two or three sentences: what the dock is for and what it produces.
    """

    def __init__(self, about: str) -> None:
        super().__init__()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        outer.addWidget(scroll)
        self.scroll = scroll
        inner = QWidget()
        scroll.setWidget(inner)
        self.body = QVBoxLayout(inner)
        self.about = QLabel(about)
        self.about.setWordWrap(True)
        self.about.setStyleSheet("color: gray;")
        self.about.setObjectName("edxtomo_about")
        self.setWhatsThis(about)
        self.body.addWidget(self.about)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("edxtomo_status")

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        """As wide as the content needs, so no input is cut off behind a horizontal scrollbar.

        A scroll area's own hint ignores its content's width; the dock would
        then open narrower than its widest row (a file button, a table).
        """
        hint = super().minimumSizeHint()
        content = self.scroll.widget().minimumSizeHint().width()
        # The vertical bar and the frame (a style sheet may draw one) take from the viewport.
        chrome = self.scroll.verticalScrollBar().sizeHint().width() + 2 * self.scroll.frameWidth()
        return QSize(max(hint.width(), content + chrome), hint.height())

    def set_status(self, text: str) -> None:
        """Say what the last action did (every action ends by calling this)."""
        self.status.setText(text)

    def report_error(self, action: str, exc: Any) -> str:
        """Status and notification for a failure: the cause first, then what failed.

        Returns the message, e.g. ``"no tilt angle for 3.bcf ... (extraction failed)"``.
        """
        message = f"{error_text(exc)} ({action} failed)"
        self.set_status(message)
        show_error(message)
        return message


def error_text(exc: Any) -> str:
    """An exception's message with a leading path moved to the end.

    ``"/long/path/x.bcf: not a Bruker file"`` → ``"not a Bruker file: /long/path/x.bcf"``,
    so a toast that is cut off still shows the cause.
    """
    text = str(exc).strip() or type(exc).__name__
    head, sep, rest = text.partition(": ")
    if sep and rest and _PATH_HEAD.match(head.strip("'\"")):
        return f"{rest}: {head}"
    return text


_PATH_HEAD = re.compile(r"^(?:[/~\\.]|[A-Za-z]:[/\\]|\d+ files in [/~.A-Za-z])")
