"""Helpers every benchmark shares: the repository on `sys.path`, resident-memory readings and clip writing. Import it
first (`import _common`): a benchmark is run as a script from any directory (`python benchmarks/bench_x.py`), so its
own folder is on `sys.path` and this module puts the repository there too. In-memory examples need no dataset
class: a list is a map-style dataset for `Trainer` and `DataLoader`.
"""

from __future__ import annotations

import os
import resource
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# This tree's packages first, not an installed (or editable, other-checkout) copy.
sys.path[:] = [REPO] + [path for path in sys.path if os.path.abspath(path or ".") != REPO]


# ---- resident memory (Linux) ----------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """The current resident set size of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """This program's peak resident size (VmHWM). Not ``ru_maxrss``: on Linux that survives ``exec`` and so starts
    at the parent's size when the parent is larger."""
    return proc_status_kib("VmHWM") * 1024


def max_rss_bytes() -> int:
    """``ru_maxrss`` (the process's peak resident size, including what it inherited across ``exec``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def proc_status_kib(field: str) -> int:
    """A memory field of /proc/self/status in KiB, e.g. VmRSS (current) or VmHWM (peak since the last reset)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    """Reset VmHWM (the peak RSS) to the current RSS (`echo 5 > /proc/self/clear_refs`)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


# ---- media and datasets ---------------------------------------------------------------------------------------------


def write_clip_once(path, frames, fps: float, audio=None, sample_rate: int = 44100, **kwargs) -> str:
    """Write an mp4 (H.264 + AAC, `datasets_emotions.synthetic_media.write_clip`) unless `path` exists; written to a
    temporary name and renamed, so that an interrupted run never leaves a truncated clip to be reused. `frames`
    may be a callable making them (called only when the clip is written)."""
    from datasets_emotions.synthetic_media import write_clip

    path = str(path)
    if os.path.exists(path):
        return path
    partial = path + ".part.mp4"
    write_clip(partial, frames() if callable(frames) else frames, fps=fps, audio=audio, sample_rate=sample_rate,
               **kwargs)
    os.replace(partial, path)
    return path

