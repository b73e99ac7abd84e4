"""Issue 11.1: every folder the project writes is a complete Hub repo (model + processor + remote code + pipeline
entry + card), used as a user would: a fresh Python process where this package cannot be imported loads the final
`output_dir` of `train_hf.py`, one of its Trainer checkpoints, and the `--push_to_hub` upload laid out in a local
Hugging Face cache and loaded by repo id; `pipeline("audio-visual-emotion-classification")`, `Auto*` and
`pipeline("video-classification")` must label real mp4 files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import train_hf
from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip
from fresh_process import run_without_package
from test_train_hf import tiny_run_args

REPO_ID = "org/avcpnet-flows"
REPO_FILES = {"config.json", "model.safetensors", "README.md", "pipeline_avcpnet.py", "modeling_avcpnet.py",
              "processing_avcpnet.py"}

# Run in the fresh process: one JSON line with what each entry point gave.
LOAD_AND_LABEL = """
import json, sys, warnings
import torch
from transformers import AutoModelForVideoClassification, AutoProcessor, pipeline
warnings.simplefilter("ignore")
model_id, clips = MODEL_ID, json.loads(CLIPS)
report = {}
classifier = pipeline("audio-visual-emotion-classification", model=model_id, trust_remote_code=True)
report["custom"] = [{"label": r["label"], "score": r["score"], "polarity": r["polarity"]} for r in classifier(clips)]
model = AutoModelForVideoClassification.from_pretrained(model_id, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=True)
with torch.no_grad():
    probabilities = model(**processor(videos=clips, return_tensors="pt")).logits.softmax(-1)
report["auto"] = [{"label": model.config.id2label[int(p.argmax())], "score": float(p.max())} for p in probabilities]
report["auto_module"] = type(model).__module__
try:
    video = pipeline("video-classification", model=model_id, trust_remote_code=True)
    report["video_classification"] = [video(clip)[0] for clip in clips]
except Exception as error:
    report["video_classification_error"] = f"{type(error).__name__}: {error}"
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_clips")
    return [
        write_clip(folder / "talking.mp4", moving_square_frames(24, 48, 64), fps=12, audio=tone(220, 2.0, 16000),
                   sample_rate=16000),
        write_clip(folder / "loud.mp4", moving_square_frames(30, 64, 48, color=(40, 80, 250), speed=3), fps=15,
                   audio=tone(1800, 2.0, 16000, tempo_hz=3), sample_rate=16000),
    ]


@pytest.fixture(scope="module")
def saved_folders(tmp_path_factory):
    """train_hf with a mid-run checkpoint and a (intercepted) push; returns the three folders a user loads."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoUrl

    output_dir = tmp_path_factory.mktemp("run")
    uploads = []

    def fake_upload_folder(self, *, repo_id, folder_path, ignore_patterns=None, **kwargs):
        staged = tmp_path_factory.mktemp("upload")  # exactly what would be uploaded
        shutil.copytree(folder_path, staged, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*ignore_patterns))
        uploads.append((repo_id, staged))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: RepoUrl(f"https://hf.co/{repo_id}"))
        patch.setattr(HfApi, "upload_folder", fake_upload_folder)
        train_hf.main(tiny_run_args(output_dir, tmp_path_factory.mktemp("cache"), "--do_train", "--max_steps", "3",
                                    "--save_strategy", "steps", "--save_steps", "2", "--push_to_hub",
                                    "--hub_model_id", REPO_ID, "--hub_strategy", "end"))
    (repo_id, upload), = uploads
    assert repo_id == REPO_ID

    # The upload laid out as `huggingface_hub` downloads it: models--org--name/snapshots/<revision> + refs/main.
    hub_cache = tmp_path_factory.mktemp("hf_home") / "hub"
    repo = hub_cache / f"models--{REPO_ID.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(upload, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return {"output_dir": (str(output_dir), {}), "checkpoint": (str(output_dir / "checkpoint-2"), {}),
            "hub": (REPO_ID, {"HF_HUB_CACHE": str(hub_cache)})}


@pytest.fixture(scope="module")
def reports(saved_folders, clips, tmp_path_factory):
    results = {}
    for name, (model_id, env) in saved_folders.items():
        script = f"MODEL_ID, CLIPS = {model_id!r}, {json.dumps(clips)!r}\n" + LOAD_AND_LABEL
        # A fresh modules cache: the Hub case has a fixed fake revision, which transformers treats as immutable, so
        # a shared cache would serve the remote code of an earlier run.
        env = {**env, "HF_MODULES_CACHE": str(tmp_path_factory.mktemp("modules"))}
        done = run_without_package(script,
                                   cwd=tmp_path_factory.mktemp("fresh"), env=env, timeout=300)
        assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"
        line = next(line for line in done.stdout.splitlines() if line.startswith("REPORT "))
        results[name] = json.loads(line[len("REPORT "):])
    return results


@pytest.mark.parametrize("name", ["output_dir", "checkpoint"])
def test_saved_folder_holds_a_complete_repo(saved_folders, name):
    folder = Path(saved_folders[name][0])
    names = set(os.listdir(folder))
    assert REPO_FILES <= names, REPO_FILES - names
    assert {"processor_config.json"} & names or {"preprocessor_config.json"} & names, names
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"]["audio-visual-emotion-classification"]["impl"] == \
        "pipeline_avcpnet.AVCPNetPipeline"
    assert config["custom_pipelines"]["video-classification"]["impl"] == \
        "pipeline_avcpnet.AVCPNetVideoClassificationPipeline"
    assert "pipeline_tag: video-classification" in (folder / "README.md").read_text()


@pytest.mark.smoke
@pytest.mark.parametrize("name", ["output_dir", "checkpoint", "hub"])
def test_custom_pipeline_and_auto_classes_label_mp4_files_without_the_package(reports, name):
    report = reports[name]
    assert report["auto_module"].startswith("transformers_modules")  # the folder's own code, not the package
    assert len(report["custom"]) == len(report["auto"]) == 2
    for from_pipeline, from_auto in zip(report["custom"], report["auto"]):
        assert from_pipeline["label"] == from_auto["label"]
        assert from_pipeline["score"] == pytest.approx(from_auto["score"], abs=1e-5)
        assert from_pipeline["polarity"] in ("positive", "neutral", "negative")


@pytest.mark.smoke
@pytest.mark.parametrize("name", ["output_dir", "checkpoint", "hub"])
def test_video_classification_pipeline_labels_mp4_files_without_the_package(reports, name):
    report = reports[name]
    assert "video_classification_error" not in report, report.get("video_classification_error")
    for result, from_auto in zip(report["video_classification"], report["auto"]):
        assert result["label"] == from_auto["label"]
