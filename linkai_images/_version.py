"""The package's version: the one place it is written (pyproject reads it from here).

A literal rather than ``importlib.metadata.version(...)``: reading the
installed metadata costs a few milliseconds of every ``import linkai_images``.
A test checks that the installed distribution reports the same.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
