"""Pictures of emotion predictions with matplotlib (headless Agg backend): the timeline plot and the class bar chart.

`plot_timeline` draws the smoothed class probabilities stacked over time (one colour per class, the same colours
everywhere), the windows' top-emotion segments as labels along the top, a polarity band underneath (green positive,
grey neutral, red negative, by the polarity with the largest summed probability) and, with `branches=True`, the
visual-only and audio-only predictions stacked the same way. The file type follows the extension (png, svg, pdf).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .labels import POLARITIES

POLARITY_COLOURS = {"positive": "#2ca02c", "neutral": "#b0b0b0", "negative": "#d62728"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def class_colours(labels: list[str]) -> dict[str, tuple]:
    """A fixed colour per class (tab10/tab20 in label order)."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _stack(axis, times: np.ndarray, values: np.ndarray, labels: list[str], colours: dict, title: str) -> None:
    axis.stackplot(times, values.T, colors=[colours[label] for label in labels], labels=labels, linewidth=0)
    axis.set_ylim(0, 1)
    axis.set_xlim(times[0], times[-1])
    axis.set_ylabel("probability")
    axis.set_title(title, fontsize=9, loc="left")


def plot_timeline(timeline, path: str | os.PathLike, branches: bool = False, title: Optional[str] = None) -> str:
    """Draw an `EmotionTimeline` to `path` (PNG, SVG, ... by extension); returns the path."""
    plt = _pyplot()
    path = os.fspath(path)
    labels, colours = timeline.labels, class_colours(timeline.labels)
    times = timeline.centres
    if len(times) == 1:  # a single window: draw it across its span
        times = np.array([timeline.starts[0], timeline.ends[0]])
        expand = lambda values: None if values is None else np.repeat(values, 2, axis=0)  # noqa: E731
    else:
        expand = lambda values: values  # noqa: E731
    panels = [("emotions (smoothed over %d windows)" % timeline.smooth if timeline.smooth > 1 else "emotions",
               expand(timeline.smoothed))]
    if branches:
        if timeline.visual_probabilities is not None:
            panels.append(("visual branch", expand(timeline.visual_probabilities)))
        if timeline.audio_probabilities is not None and timeline.has_audio:
            panels.append(("audio branch", expand(timeline.audio_probabilities)))
    heights = [3] + [2] * (len(panels) - 1) + [0.4]
    figure, axes = plt.subplots(len(panels) + 1, 1, figsize=(10, 1.2 + sum(heights) * 0.8), sharex=True,
                                gridspec_kw={"height_ratios": heights})
    for axis, (panel_title, values) in zip(axes, panels):
        _stack(axis, times, values, labels, colours, panel_title)
    for segment in timeline.segments:  # top-emotion segments, named along the top of the first panel
        middle = (segment["start"] + segment["end"]) / 2
        axes[0].axvline(segment["start"], color="white", linewidth=0.8)
        if segment["end"] - segment["start"] > 0.04 * timeline.duration:
            axes[0].text(middle, 1.02, segment["label"], ha="center", va="bottom", fontsize=8,
                         transform=axes[0].get_xaxis_transform())
    band = axes[-1]
    polarity = expand(timeline.polarity_probabilities).argmax(-1)
    edges = np.concatenate([[times[0]], (times[1:] + times[:-1]) / 2, [times[-1]]])
    for k, polarity_id in enumerate(polarity):
        band.axvspan(edges[k], edges[k + 1], color=POLARITY_COLOURS[POLARITIES[polarity_id]], linewidth=0)
    band.set_yticks([])
    band.set_ylabel("polarity", rotation=0, ha="right", va="center", fontsize=8)
    band.set_xlabel("time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[label]) for label in labels]
    handles += [plt.Rectangle((0, 0), 1, 1, color=POLARITY_COLOURS[name]) for name in POLARITIES]
    figure.legend(handles, labels + list(POLARITIES), loc="center right", fontsize=8, frameon=False)
    figure.suptitle(title or os.path.basename(timeline.video), fontsize=10, x=0.02, ha="left")
    figure.tight_layout(rect=(0, 0, 0.85, 0.97))
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_class_bars(labels: list[str], probabilities, path: str | os.PathLike, title: str = "") -> str:
    """A horizontal bar chart of one prediction's class probabilities, best class on top; returns the path."""
    plt = _pyplot()
    path = os.fspath(path)
    probabilities = np.asarray(probabilities, dtype=float)
    order = np.argsort(probabilities)
    colours = class_colours(labels)
    figure, axis = plt.subplots(figsize=(5, 0.35 * len(labels) + 0.8))
    axis.barh([labels[i] for i in order], probabilities[order], color=[colours[labels[i]] for i in order])
    for position, i in enumerate(order):
        axis.text(min(probabilities[i] + 0.01, 0.9), position, f"{probabilities[i]:.2f}", va="center", fontsize=8)
    axis.set_xlim(0, 1)
    axis.set_xlabel("probability")
    if title:
        axis.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


__all__ = ["plot_timeline", "plot_class_bars", "class_colours"]
