"""The scanpy conventions shared by every plot: draw into ``ax`` or a new figure, then save and/or show."""

from __future__ import annotations

from pathlib import Path

__all__ = ["finish", "new_axes"]


def new_axes(ax, figsize: tuple[float, float]):
    """``ax`` itself, or the axes of a new figure of ``figsize``."""
    if ax is not None:
        return ax, False
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)[1], True


def finish(ax, *, created: bool, show: bool | None, save: str | Path | None):
    """Save the figure when asked; show it when asked, or by default for a new figure that is not saved."""
    import matplotlib.pyplot as plt

    if save is not None:
        ax.figure.savefig(save, dpi=150, bbox_inches="tight")
    if show or (show is None and save is None and created):
        plt.show()
    return ax
