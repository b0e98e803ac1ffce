"""Figure style shared by every experiment: one :func:`figure` to open a figure, one :func:`save` to write it.

Every experiment's ``plot`` draws through these two functions::

    from experiments import _plotting

    fig, ax = _plotting.figure()                      # one panel, 3.4 × 2.6 in
    ax.loglog(n, err, "o-", label="Euler")
    ax.set(xlabel="NFE (network calls)", ylabel="RMS error (pixel units)")
    ax.legend()
    return [_plotting.save(fig, out_dir / "error.png")]

:func:`figure` builds a bare :class:`matplotlib.figure.Figure` (no pyplot, no global backend switch, nothing to
close) with constrained layout; :func:`save` draws it under the shared style and refuses a figure that breaks the
house rules, listing every problem (:func:`problems`):

* every text at least ``MIN_FONT_PT`` = 8 pt at the saved size (the figure is saved at its own size in inches, so a
  point is a point on the page);
* every axes that shows data has an x and a y label (a label on a shared sibling counts);
* every colour-mapped image (any map but ``gray``) has a colorbar (:func:`colorbar`), or shares its norm with one
  that has;
* labelled lines come with a legend, no two tick labels of one axis overprint each other, and the layout fits
  (constrained layout did not collapse an axes to make room for a wide legend or colorbar).

Units go in the labels in brackets or words: ``"σ (pixel units)"``, ``"time (s)"``, ``"PSNR (dB)"``.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["MIN_FONT_PT", "STYLE", "colorbar", "figure", "hide_ticks", "legend_below", "problems", "save"]

MIN_FONT_PT = 8.0
"""Smallest font allowed at the saved size, in points."""

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "image.cmap": "viridis",
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
}
"""rcParams every experiment figure is built and saved under."""

_GRAY = {"gray", "Greys", "Greys_r", "binary", "binary_r", "gist_gray"}


def figure(nrows: int = 1, ncols: int = 1, *, panel: tuple[float, float] = (3.4, 2.6), squeeze: bool = True,
           **subplot_kw: Any):
    """A new figure with ``nrows × ncols`` panels of ``panel`` = (width, height) inches each.

    Args:
      nrows, ncols: the grid of panels.
      panel: size of one panel in inches; the figure is ``(ncols·width, nrows·height)`` and is saved at that size.
      squeeze: as in :func:`matplotlib.pyplot.subplots`: a single Axes for a 1 × 1 grid, a 1-D array for one row or
        column; ``False`` always gives a 2-D array.
      **subplot_kw: passed to :meth:`matplotlib.figure.Figure.subplots` (``sharex``, ``sharey``,
        ``gridspec_kw``, ...).

    Returns:
      ``(fig, axes)``.
    """
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if int(nrows) < 1 or int(ncols) < 1:
        raise ValueError(f"nrows and ncols must be >= 1; received nrows={nrows}, ncols={ncols}")
    width, height = panel
    if not (width > 0 and height > 0):
        raise ValueError(f"panel must be two positive sizes in inches; received {panel!r}")
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(ncols * width, nrows * height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(int(nrows), int(ncols), squeeze=squeeze, **subplot_kw)
    return fig, axes


def colorbar(fig, mappable, ax, label: str, **kwargs: Any):
    """A colorbar for ``mappable`` next to ``ax`` (one Axes or several), with its ``label`` (say the units).

    Args:
      fig: the figure.
      mappable: what ``imshow`` / ``pcolormesh`` / ``scatter(c=...)`` returned.
      ax: the Axes (or array of Axes) to steal room from.
      label: what the colour means, with units.
      **kwargs: passed to :meth:`matplotlib.figure.Figure.colorbar`.

    Returns:
      The :class:`matplotlib.colorbar.Colorbar`.
    """
    if not label:
        raise ValueError("colorbar label must say what the colour means (with units); received an empty label")
    cb = fig.colorbar(mappable, ax=ax, **kwargs)
    cb.set_label(label)
    return cb


def legend_below(ax, *, ncols: int = 1, **kwargs: Any):
    """The legend of ``ax`` under its x label, off the data (the figure grows to hold it when saved).

    Args:
      ax: the Axes whose labelled artists the legend names.
      ncols: legend columns.
      **kwargs: passed to :meth:`matplotlib.axes.Axes.legend`.

    Returns:
      The :class:`matplotlib.legend.Legend`.
    """
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=ncols, **kwargs)


def hide_ticks(ax) -> None:
    """An image panel: no ticks, no spines (a y label, e.g. a row name, stays visible).

    Args:
      ax: the Axes showing an image.
    """
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _texts(fig) -> Iterable:
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.get_figure() is not None:
            yield t


def _is_colorbar_axes(ax) -> bool:
    return hasattr(ax, "_colorbar") or ax.get_label() == "<colorbar>"


def _labelled(ax, which: str) -> bool:
    get = (lambda a: a.get_xlabel()) if which == "x" else (lambda a: a.get_ylabel())
    shared = ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()
    return any(get(a).strip() for a in shared.get_siblings(ax))


def _overprinted(ax, renderer) -> list[str]:
    out = []
    for which, labels in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
        boxes = [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text().strip()]
        boxes.sort(key=(lambda b: b.x0) if which == "x" else (lambda b: b.y0))
        for a, b in itertools.pairwise(boxes):
            if a.overlaps(b):
                out.append(which)
                break
    return out


def problems(fig) -> list[str]:
    """What breaks the house rules in ``fig`` (empty when none); :func:`save` refuses a figure with any.

    Args:
      fig: a drawn or undrawn :class:`matplotlib.figure.Figure`.

    Returns:
      One sentence per problem, naming the panel (its title, or its index) and the text or artist at fault.
    """
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with mpl.rc_context(STYLE), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        out = [f"layout: {w.message}" for w in caught if "constrained_layout" in str(w.message)]
        for t in _texts(fig):
            if t.get_fontsize() < MIN_FONT_PT:
                out.append(f"text {t.get_text()[:40]!r} is {t.get_fontsize():g} pt (minimum {MIN_FONT_PT:g} pt)")
        mapped = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name not in _GRAY]
        with_bar = {id(im.norm) for im in mapped if im.colorbar is not None}
        for i, ax in enumerate(fig.axes):
            if _is_colorbar_axes(ax) or not ax.get_visible():
                continue
            name = f"panel {i} ({ax.get_title()!r})" if ax.get_title() else f"panel {i}"
            has_data = bool(ax.lines or ax.collections or ax.patches or ax.containers)
            images = ax.get_images()
            if has_data and ax.axison and not images:
                for which in ("x", "y"):
                    if not _labelled(ax, which):
                        out.append(f"{name} has no {which} label")
            if any(im.get_cmap().name not in _GRAY and id(im.norm) not in with_bar for im in images):
                out.append(f"{name} shows a colour-mapped image without a colorbar")
            handles, _ = ax.get_legend_handles_labels()
            if handles and ax.get_legend() is None and not fig.legends:
                out.append(f"{name} has labelled lines but no legend")
            out += [f"{name} has overprinted {w} tick labels" for w in _overprinted(ax, renderer)]
    return out


def save(fig, path: str | Path) -> Path:
    """Check ``fig`` against the house rules (:func:`problems`) and write it to ``path`` under :data:`STYLE`.

    Args:
      fig: the figure from :func:`figure`.
      path: the file to write (``.png`` or ``.pdf``); its folder is created.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Raises:
      ValueError: listing every problem, when the figure breaks a rule (nothing is written).
    """
    import matplotlib as mpl

    path = Path(path)
    found = problems(fig)
    if found:
        raise ValueError(f"figure {path.name} breaks the figure rules:\n  " + "\n  ".join(found))
    path.parent.mkdir(parents=True, exist_ok=True)
    with mpl.rc_context(STYLE):
        fig.savefig(path)
    return path
