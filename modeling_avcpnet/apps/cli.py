"""The ``avcpnet`` command line: the arguments of its three commands and the dispatch to the modules that run them.

- ``avcpnet predict``: label video files, one row per file (``modeling_avcpnet.inference.predict``);
- ``avcpnet timeline``: the emotion timeline of a long video (``modeling_avcpnet.inference.timeline``);
- ``avcpnet demo``: the Gradio demo app (``modeling_avcpnet.apps.demo``);
- ``avcpnet sample-clips DIR``: a few small clips to try the README's examples on (``datasets_emotions.example_clips``).

``--version`` names the versions a bug report needs; user errors (``OSError``, ``ValueError``) print one line,
``--debug`` (anywhere in the line) shows their traceback.

``python -m modeling_avcpnet.apps.cli`` (or the old ``python -m modeling_avcpnet.cli``) is the same command, e.g.
under ``torchrun`` for a multi-process ``predict``.
"""

from __future__ import annotations

import argparse
import sys

from ..inference import predict
from ..inference.result_files import FORMATS
from ..media_avcpnet import VIDEO_EXTENSIONS
from .demo import DemoSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avcpnet", description="AV-CPNet audio-visual emotion recognition.")
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one-line message (anywhere in the line)")
    commands = parser.add_subparsers(dest="command", required=True)
    add_predict_arguments(commands.add_parser(
        "predict", help="label video files with an AV-CPNet or MER 2023 checkpoint",
        description=predict.__doc__.split("\n\n", 1)[1].split("\n\nHere:")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter))
    add_timeline_arguments(commands.add_parser(
        "timeline", help="emotion probabilities over sliding windows of a long video (CSV, JSON, plot)"))
    add_demo_arguments(commands.add_parser("demo", help="start the Gradio demo app (127.0.0.1 by default)"))
    from datasets_emotions.example_clips import add_arguments as add_example_clips_arguments

    add_example_clips_arguments(commands.add_parser(
        "sample-clips", help="write a few small clips to try the examples on (clip.mp4, talk.mp4, videos/, ...)"))
    return parser


def version_line() -> str:
    """`avcpnet --version`: this package's version and those of the libraries a bug report needs."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"avcpnet {of('avcpnet')} (transformers {of('transformers')}, torch {of('torch')}, av {of('av')})"


def add_predict_arguments(parser) -> None:
    """Arguments of `avcpnet predict`."""
    parser.add_argument("inputs", nargs="+", help="video files, folders (searched recursively) or glob patterns")
    parser.add_argument("-m", "--model", required=True, help="checkpoint folder or Hub id (model + processor files)")
    parser.add_argument("-o", "--output", required=True, help="output file, .csv or .jsonl")
    parser.add_argument("--format", choices=FORMATS, help="output format (default: from the extension, else csv)")
    parser.add_argument("--batch_size", "--batch-size", type=int, default=8, help="clips per model forward")
    parser.add_argument("--num_workers", "--num-workers", type=int, default=0,
                        help="DataLoader worker processes that decode videos (0: decode in the main process)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the main process (default: the cores minus --num_workers, at least 1); "
                             "1 is fastest on a busy shared machine")
    parser.add_argument("--device", default=None,
                        help="e.g. cpu, cuda, cuda:1 (default: cuda:LOCAL_RANK where there are GPUs, else cpu)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="model precision; bfloat16 is about 2x faster on CPUs with AMX / AVX512-BF16 (and on "
                             "GPUs), within 0.02 of float32's probabilities")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (inductor); pays a compilation of minutes on the first batch")
    parser.add_argument("--extensions", default=",".join(VIDEO_EXTENSIONS),
                        help="comma-separated extensions looked for in folders")
    parser.add_argument("--overwrite", action="store_true", help="start the output file afresh instead of resuming")
    parser.add_argument("--retry_errors", "--retry-errors", action="store_true",
                        help="when resuming, try again the files whose rows have an error")
    parser.add_argument("--trust_remote_code", "--trust-remote-code", action="store_true",
                        help="allow loading a checkpoint's own code (not needed for avcpnet checkpoints)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_timeline_arguments(parser) -> None:
    """Arguments of `avcpnet timeline`."""
    parser.add_argument("video", help="a video file (any length)")
    parser.add_argument("-m", "--model", required=True, help="checkpoint folder or Hub id (model + processor files)")
    parser.add_argument("-o", "--output_dir", "--output-dir",
                        help="folder for timeline.csv/.json/.png/.svg (default: VIDEO's name + _timeline)")
    parser.add_argument("--window", type=float, default=4.0, help="window length in seconds (default 4)")
    parser.add_argument("--stride", type=float, default=1.0, help="step between windows in seconds (default 1)")
    parser.add_argument("--batch_size", "--batch-size", type=int, default=8, help="windows per model forward")
    parser.add_argument("--smooth", type=int, default=3,
                        help="windows in the centred moving average of the smoothed track and segments (default 3)")
    parser.add_argument("--branches", action="store_true", help="also plot the visual and audio branches")
    parser.add_argument("--no_plot", "--no-plot", action="store_true", help="write the CSV and JSON only")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the decoder has its own threads, and on a busy 2-core machine "
                             "one torch thread was 14x faster than two; 0: torch's choice)")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda (default: an accelerator if any)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_demo_arguments(parser) -> None:
    """Arguments of `avcpnet demo`."""
    defaults = DemoSettings()
    parser.add_argument("-m", "--model", required=True, help="checkpoint folder or Hub id (model + processor files)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--max_upload_mb", "--max-upload-mb", type=float, default=defaults.max_upload_mb,
                        help=f"largest upload in MB (default {defaults.max_upload_mb:g})")
    parser.add_argument("--max_duration_s", "--max-duration-s", type=float, default=defaults.max_duration_s,
                        help=f"longest clip in seconds (default {defaults.max_duration_s:g})")
    parser.add_argument("--window", type=float, default=defaults.window, help="timeline window in seconds")
    parser.add_argument("--stride", type=float, default=defaults.stride, help="timeline stride in seconds")
    parser.add_argument("--timeline_min_seconds", "--timeline-min-seconds", type=float,
                        default=defaults.timeline_min_seconds, help="clips at least this long get a timeline")
    parser.add_argument("--no_examples", "--no-examples", action="store_true",
                        help="do not generate and show the example clips")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: torch's choice); 1 is fastest on a busy shared machine")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda (default: an accelerator if any)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return _run_command([item for item in argv if item != "--debug"])
    except (OSError, ValueError) as error:  # user errors (missing files, bad values): one line, unless --debug
        if debug:
            raise
        print(f"avcpnet: error: {' '.join(str(error).split())} (--debug shows the traceback)", file=sys.stderr)
        return 1


def _run_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "predict":
        return predict.predict_command(args)
    if args.command == "timeline":
        from ..inference.timeline import timeline_command

        return timeline_command(args)
    if args.command == "demo":
        from .demo import demo_command

        return demo_command(args)
    if args.command == "sample-clips":
        from datasets_emotions.example_clips import command as example_clips_command

        return example_clips_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
