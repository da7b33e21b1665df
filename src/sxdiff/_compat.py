"""Optional dependencies, imported in one place with an actionable message when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_optional"]


def import_optional(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency or raise ``ImportError`` saying how to install it.

    Parameters
    ----------
    module
        Module to import, e.g. ``"pertpy"``.
    extra
        The sxdiff extra that installs it, e.g. ``"pertpy"``.
    purpose
        What it is needed for, used in the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs the optional package {module!r}, which is not installed. Install it with "
            f"`pip install 'sxdiff[{extra}]'`."
        ) from error
