"""The store boundary's own exceptions; library errors never leak past it."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every storage failure."""


class StoreUnavailable(StoreError):
    """The store could not be reached; the caller may retry later, nothing was applied."""


class StoreConflict(StoreError):
    """A write was refused because another writer got there first (e.g. a seq already taken)."""
