"""edxtomo: limited-angle STEM-EDX tomography (DIPm-TV, TV, SIRT)."""

__version__ = "0.1.0"
