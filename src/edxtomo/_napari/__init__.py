"""napari plugin: reader, writer, sample data and dock widgets.

Everything that imports Qt or napari lives in this package; the rest of
:mod:`edxtomo` stays importable without a display.
"""
