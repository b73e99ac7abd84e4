"""The demo web app: `avcpnet demo --model CHECKPOINT` (Gradio), also the `app.py` of a Hugging Face Space.

A user uploads or records a clip and sees the top emotion, a bar chart of every class, the visual-only and
audio-only predictions, the polarity and, for clips longer than `timeline_min_seconds`, the emotion timeline. The
prediction is the pipeline's (`AVCPNetPipeline`'s processor in eval mode, then `predict_clips` once per clip, whose
results for the fused head and each branch are the pipeline's result dicts); the timeline is
`modeling_avcpnet.inference.timeline.emotion_timeline`.

Safe by default:
- the server binds 127.0.0.1 unless `host` says otherwise, and `share=True` (a public gradio.live link) only on
  request;
- uploads larger than `max_upload_mb` are refused by Gradio's upload route (`launch(max_file_size=...)`) and again
  by the handler (recordings, API calls), clips longer than `max_duration_s` are refused after a cheap probe (the
  packet index, no decoding), each with a message in the page;
- Gradio keeps uploads in its cache folder; the app points that at a fresh temporary folder (`GRADIO_TEMP_DIR`),
  deletes each upload once it was analysed and removes the folder when the process exits;
- the handler only reads files that Gradio put in that upload folder (Gradio itself refuses a payload naming any
  other path, and its file route serves only the app's own files); files that are not media (e.g. a text file
  named .mp4) get the media layer's error message, never a traceback.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Optional


MB = 1024 * 1024  # the unit of --max_upload_mb, as Gradio counts it in its size message
EXAMPLE_PREFIX = "avcpnet-example-"
EXAMPLES_DIR = os.path.join(tempfile.gettempdir(), "avcpnet-demo-examples")


@dataclass
class DemoSettings:
    """Limits and timeline settings of the app (all configurable from the command line)."""

    max_upload_mb: float = 50.0
    max_duration_s: float = 600.0
    window: float = 4.0
    stride: float = 1.0
    timeline_min_seconds: float = 10.0  # clips at least this long also get a timeline


class DemoInputError(ValueError):
    """A clip the app cannot analyse; the message is shown in the page."""


# --------------------------------------------------------------------------------------------------- analysis
class EmotionAnalyser:
    """Everything the page shows for one clip, computed with an `AVCPNetPipeline` (no Gradio here)."""

    def __init__(self, pipe, settings: Optional[DemoSettings] = None, work_dir: Optional[str] = None):
        self.pipe, self.settings = pipe, settings or DemoSettings()
        self.work_dir = work_dir or tempfile.mkdtemp(prefix="avcpnet-demo-work-")
        config = pipe.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]

    def check(self, path: str) -> float:
        """Refuse files over the size or duration limit; returns the clip's duration in seconds."""
        from ..inference.timeline import video_duration
        from ..media_avcpnet import MediaError, MediaReader

        name = os.path.basename(path)
        if not os.path.isfile(path):
            raise DemoInputError(f"{name}: the upload is missing on the server (upload it again)")
        size_mb = os.path.getsize(path) / MB
        if size_mb > self.settings.max_upload_mb:
            raise DemoInputError(f"{name} is {size_mb:.1f} MB; this app accepts files up to "
                                 f"{self.settings.max_upload_mb:g} MB (--max_upload_mb)")
        try:
            with MediaReader(path, require_video=True) as reader:
                duration, _ = video_duration(reader.frame_times(), reader.fps)
        except MediaError as error:
            raise DemoInputError(f"{name}: {error.problem}") from None
        if duration > self.settings.max_duration_s:
            raise DemoInputError(f"{name} lasts {duration:.0f} s; this app accepts clips up to "
                                 f"{self.settings.max_duration_s:g} s (--max_duration_s)")
        return duration

    def analyse(self, path: str) -> dict[str, Any]:
        """Predictions and chart files for the clip at `path`; raises `DemoInputError` for unusable files."""
        from ..pipeline_avcpnet import preprocess_clip
        from ..prediction_avcpnet import predict_clips
        from ..inference.timeline import emotion_timeline
        from ..inference.timeline_plot import plot_class_bars
        from ..media_avcpnet import MediaError

        duration = self.check(path)
        name = os.path.basename(path)
        try:
            inputs = preprocess_clip(self.pipe.processor, path)
        except MediaError as error:
            raise DemoInputError(f"{name}: {error.problem}") from None
        predictions = predict_clips(self.pipe.model, inputs)
        id2label, top_k = self.pipe.model.config.id2label, len(self.labels)
        fused = predictions.result(0, id2label, top_k)
        branch = {name: predictions.result(0, id2label, top_k, branch=name)
                  for name in predictions.branch_probabilities}
        folder = os.path.join(self.work_dir, uuid.uuid4().hex)
        os.makedirs(folder)
        scores = {item["label"]: item["score"] for item in fused["labels"]}
        result = {"name": name, "duration": duration, "prediction": fused,
                  "visual": branch.get("visual"), "audio": branch.get("audio") if fused["has_audio"] else None,
                  "bars": plot_class_bars(self.labels, [scores[label] for label in self.labels],
                                          os.path.join(folder, "classes.png"), title=f"{name}: all classes"),
                  "timeline": None}
        if duration >= self.settings.timeline_min_seconds:
            timeline = emotion_timeline(self.pipe, path, window=self.settings.window, stride=self.settings.stride)
            result["timeline"] = timeline.save(folder, branches=True)["png"]
            result["segments"] = timeline.segments
        return result


def scores_of(prediction: Optional[dict[str, Any]]) -> Optional[dict[str, float]]:
    """`{label: probability}` for a `gr.Label`, from a pipeline result."""
    return None if prediction is None else {item["label"]: item["score"] for item in prediction["labels"]}


def summary_markdown(result: dict[str, Any]) -> str:
    prediction = result["prediction"]
    lines = [f"### {prediction['label']} ({prediction['score']:.0%})",
             f"Polarity: **{prediction['polarity']}** ({prediction['polarity_score']:.0%}). "
             f"{result['name']}, {result['duration']:.1f} s"
             + ("." if prediction["has_audio"] else ", no audio track: classified from the picture alone.")]
    if result.get("segments"):
        parts = [f"{s['start']:.0f}-{s['end']:.0f} s {s['label']}" for s in result["segments"]]
        lines.append("Timeline: " + "; ".join(parts))
    return "\n\n".join(lines)


# --------------------------------------------------------------------------------------------------- examples
def make_examples(folder: str = EXAMPLES_DIR) -> list[str]:
    """Generate (once) a few clips of the sample set's test split and a 16-second clip whose emotion changes half
    way, to show in the app's examples. Returns their paths."""
    from datasets_emotions.example_clips import write_changing_clip
    from datasets_emotions.sample_clips import plan_split, write_sample_clip

    from ..labels import EMOTIONS_LABELS

    os.makedirs(folder, exist_ok=True)
    specs = plan_split("test", list(EMOTIONS_LABELS), clips_per_class=2, noisy=0, seed=0)
    chosen, seen = [], set()
    for spec in specs:
        if spec.label not in seen and len(chosen) < 3:
            seen.add(spec.label)
            chosen.append(spec)
    paths = [write_sample_clip(spec, os.path.join(folder, f"{EXAMPLE_PREFIX}{spec.label}.mp4")) for spec in chosen]
    first, second = chosen[0], chosen[1]
    long_path = os.path.join(folder, f"{EXAMPLE_PREFIX}{first.label}-then-{second.label}.mp4")
    return paths + [write_changing_clip(first, second, long_path)]


# --------------------------------------------------------------------------------------------------- the app
def use_private_upload_folder() -> str:
    """Point Gradio's upload cache at a fresh temporary folder, removed when the process exits."""
    folder = tempfile.mkdtemp(prefix="avcpnet-demo-uploads-", dir=os.environ.get("GRADIO_TEMP_DIR"))
    os.environ["GRADIO_TEMP_DIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def build_demo(pipe, settings: Optional[DemoSettings] = None, examples: Optional[list[str]] = None):
    """The Gradio `Blocks` app for an `AVCPNetPipeline`. Call `use_private_upload_folder()` first (the launch
    helpers here do)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise SystemExit("error: the demo needs Gradio: pip install 'avcpnet[demo]' (or pip install gradio)") from None

    settings = settings or DemoSettings()
    upload_folder = os.environ.get("GRADIO_TEMP_DIR") or use_private_upload_folder()
    analyser = EmotionAnalyser(pipe, settings, work_dir=tempfile.mkdtemp(prefix="work-", dir=upload_folder))

    def handle(video_path: Optional[str]):
        hidden = gr.update(value=None, visible=False)
        if not video_path:
            return "Upload or record a clip.", None, None, None, None, None, hidden
        try:
            result = analyser.analyse(video_path)
        except DemoInputError as error:
            return f"**Error:** {error}", None, None, None, None, None, hidden
        except Exception as error:  # noqa: BLE001 (a message in the page instead of a traceback)
            return (f"**Error:** {os.path.basename(video_path)} could not be analysed "
                    f"({type(error).__name__}: {error})", None, None, None, None, None, hidden)
        finally:
            remove_upload(video_path, upload_folder, keep=example_copies)
        prediction = result["prediction"]
        timeline = gr.update(value=result["timeline"], visible=result["timeline"] is not None)
        return (summary_markdown(result), scores_of(prediction), result["bars"], scores_of(result["visual"]),
                scores_of(result["audio"]), prediction["polarity_scores"], timeline)

    with gr.Blocks(title="AV-CPNet emotion demo", analytics_enabled=False, delete_cache=(600, 1800)) as demo:
        gr.Markdown("# Audio-visual emotion recognition (AV-CPNet)\n"
                    f"Upload or record a clip (up to {settings.max_upload_mb:g} MB and "
                    f"{settings.max_duration_s:g} s). Clips of {settings.timeline_min_seconds:g} s or more also get "
                    f"an emotion timeline ({settings.window:g}-s windows every {settings.stride:g} s).\n\n"
                    "The headline, bars and branches summarise the whole clip (segments sampled across all of it); "
                    "the timeline shows each window on its own, so a window can differ from the headline.")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="clip", sources=["upload", "webcam"], elem_id="clip")
                status = gr.Markdown("Upload or record a clip.", elem_id="status")
            with gr.Column():
                top = gr.Label(label="emotion", num_top_classes=3, elem_id="emotion")
                polarity = gr.Label(label="polarity", elem_id="polarity")
        bars = gr.Image(label="all classes", type="filepath", elem_id="bars", interactive=False)
        with gr.Row():
            visual = gr.Label(label="visual branch alone", num_top_classes=3, elem_id="visual")
            audio = gr.Label(label="audio branch alone", num_top_classes=3, elem_id="audio")
        timeline = gr.Image(label="timeline", type="filepath", visible=False, elem_id="timeline", interactive=False)
        outputs = [status, top, bars, visual, audio, polarity, timeline]
        video.change(handle, inputs=video, outputs=outputs)
        if examples:
            gr.Examples(examples=[[path] for path in examples], inputs=video, label="examples (generated)")
    # Gradio copied the examples into the upload folder (one sub-folder each): those copies stay for reuse.
    example_copies = set(os.listdir(upload_folder))
    demo.avcpnet_settings = settings
    demo.avcpnet_examples = list(examples or [])
    return demo


def remove_upload(path: str, upload_folder: str, keep: set[str] = frozenset()) -> None:
    """Delete an analysed upload (and its folder, which Gradio makes per upload) inside the upload folder, unless
    its top folder is in `keep`."""
    path = os.path.realpath(path)
    root = os.path.realpath(upload_folder)
    if os.path.commonpath([path, root]) != root or path == root:
        return  # never touch anything outside the upload folder
    if os.path.relpath(path, root).split(os.sep)[0] in keep:
        return
    try:
        os.remove(path)
        parent = os.path.dirname(path)
        if parent != root and not os.listdir(parent):
            os.rmdir(parent)
    except OSError:
        pass


def launch_demo(demo, host: str = "127.0.0.1", port: Optional[int] = None, share: bool = False, **kwargs):
    """Start the server: bound to `host` (127.0.0.1 unless asked), uploads capped at the app's limit, a public
    share link only with `share=True`."""
    settings = getattr(demo, "avcpnet_settings", DemoSettings())
    if threading.current_thread() is threading.main_thread():
        # `kill` (SIGTERM) stops the server like Ctrl-C, so that the upload folder is removed on the way out.
        signal.signal(signal.SIGTERM, _interrupt)
    # show_error: the handler turns every error of its own into a page message, so only Gradio's own refusals (a
    # raw path that was not uploaded, an upload over the limit) reach API callers, with their reason instead of an
    # empty AppError. quiet: Gradio's start lines tell a Python user to set `share=True`; ours name the CLI option.
    quiet, wait = kwargs.pop("quiet", False), not kwargs.pop("prevent_thread_lock", False)
    result = demo.launch(server_name=host, server_port=port, share=share,
                         max_file_size=int(settings.max_upload_mb * MB), allowed_paths=demo.avcpnet_examples,
                         ssr_mode=False, show_error=True, quiet=True, prevent_thread_lock=True, **kwargs)
    if not quiet:
        link = f"public link: {demo.share_url}" if demo.share_url else "a public link: add --share to the command"
        print(f"* Running on local URL:  {demo.local_url}\n* {link}", flush=True)
    if wait:
        demo.block_thread()
    return result


def _interrupt(signum, frame):
    raise KeyboardInterrupt


# --------------------------------------------------------------------------------------------------- command line
def demo_command(args) -> int:
    """`avcpnet demo` (arguments: `apps/cli.py`): load the checkpoint, build the app and serve it until interrupted."""
    from ..inference.loading import load_pipeline

    settings = DemoSettings(max_upload_mb=args.max_upload_mb, max_duration_s=args.max_duration_s,
                            window=args.window, stride=args.stride, timeline_min_seconds=args.timeline_min_seconds)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    use_private_upload_folder()
    pipe = load_pipeline(args.model, device=args.device)
    examples = None if args.no_examples else make_examples()
    demo = build_demo(pipe, settings, examples)
    launch_demo(demo, host=args.host, port=args.port, share=args.share)
    return 0


__all__ = ["DemoSettings", "EmotionAnalyser", "build_demo", "launch_demo", "make_examples"]
