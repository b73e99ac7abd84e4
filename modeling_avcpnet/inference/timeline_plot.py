"""Pictures of emotion predictions with matplotlib (headless Agg backend): the timeline plot and the class bar chart.

`plot_timeline` draws the segments of constant top emotion as a strip along the top, the smoothed class
probabilities stacked over time (one colour per class, the same colours everywhere), with `branches=True` the
visual-only and audio-only predictions stacked the same way, and a polarity band underneath (teal positive, grey
neutral, purple negative: the polarity with the largest summed probability per window). The file type follows the extension (png, svg, pdf).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..labels import POLARITIES

POLARITY_COLOURS = {"positive": "#1b9e77", "neutral": "#bdbdbd", "negative": "#7b3294"}


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
    axis.set_ylabel("probability", fontsize=8)
    axis.set_title(title, fontsize=9, loc="left")


def _strip(axis, spans, name: str) -> None:
    """A thin axis of coloured spans `(start, end, colour, text)`, named on the left."""
    for start, end, colour, text in spans:
        axis.axvspan(start, end, color=colour, linewidth=0)
        if text:
            axis.text((start + end) / 2, 0.5, text, ha="center", va="center", fontsize=8, color="white",
                      fontweight="bold", clip_on=True)
    axis.set_yticks([])
    axis.set_ylim(0, 1)
    axis.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)


def plot_timeline(timeline, path: str | os.PathLike, branches: bool = False, title: Optional[str] = None) -> str:
    """Draw an `EmotionTimeline` to `path` (PNG, SVG, ... by extension); returns the path.

    Panels, top to bottom: the segments of constant top emotion (smoothed track), the smoothed probabilities
    stacked, optionally the visual and audio branches stacked, and the polarity band."""
    plt = _pyplot()
    path = os.fspath(path)
    labels, colours = timeline.labels, class_colours(timeline.labels)
    # Each window's values are drawn at its centre; the first and last are held out to the video's ends.
    times = np.concatenate([[0.0], timeline.centres, [timeline.duration]])

    def extend(values):
        return np.concatenate([values[:1], values, values[-1:]])

    smooth = f"smoothed over {timeline.smooth} windows" if timeline.smooth > 1 else "per window"
    panels = [(f"emotion probabilities ({smooth}; {timeline.window:g}-s windows every {timeline.stride:g} s)",
               timeline.smoothed)]
    if branches:
        if timeline.visual_probabilities is not None:
            panels.append(("visual branch alone", timeline.visual_probabilities))
        if timeline.audio_probabilities is not None and timeline.has_audio:
            panels.append(("audio branch alone", timeline.audio_probabilities))
    heights = [0.45] + [3] + [2] * (len(panels) - 1) + [0.45]
    figure, axes = plt.subplots(len(heights), 1, figsize=(10, 1.0 + sum(heights) * 0.75), sharex=True,
                                gridspec_kw={"height_ratios": heights})
    _strip(axes[0], [(s["start"], s["end"], colours[s["label"]],
                      s["label"] if s["end"] - s["start"] > 0.06 * timeline.duration else "")
                     for s in timeline.segments], "top emotion")
    for axis, (panel_title, values) in zip(axes[1:], panels):
        _stack(axis, times, extend(values), labels, colours, panel_title)
    polarity = timeline.polarity_probabilities.argmax(-1)
    edges = np.concatenate([[0.0], (timeline.centres[1:] + timeline.centres[:-1]) / 2, [timeline.duration]])
    _strip(axes[-1], [(edges[k], edges[k + 1], POLARITY_COLOURS[POLARITIES[p]], "") for k, p in enumerate(polarity)],
           "polarity")
    axes[-1].set_xlim(0, timeline.duration)
    axes[-1].set_xlabel("time (s)")
    class_handles = [plt.Rectangle((0, 0), 1, 1, color=colours[label]) for label in labels]
    axes[1].legend(class_handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                   title="emotion", title_fontsize=8)
    polarity_handles = [plt.Rectangle((0, 0), 1, 1, color=POLARITY_COLOURS[name]) for name in POLARITIES]
    axes[-1].legend(polarity_handles, POLARITIES, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7,
                    frameon=False, ncol=3, handlelength=1, columnspacing=0.8)
    figure.suptitle(title or os.path.basename(timeline.video), fontsize=10, x=0.01, ha="left")
    figure.tight_layout(rect=(0, 0, 1, 0.98))
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
