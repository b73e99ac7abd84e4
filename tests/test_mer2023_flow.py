"""Issue 11.6: MER 2023 as a new user runs it (README "MER 2023 quick run"): generate the offline sample release and
tiny backbones, train with `configs/mer2023_sample.yaml`, label a folder with `avcpnet predict` (emotion scores and
valence), and load the saved folder in a fresh process without the package (Auto classes and the pipeline)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import train_hf
from fresh_process import run_without_package
from modeling_avcpnet.apps import cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mer2023_sample")
    made = subprocess.run([sys.executable, "scripts/make_mer2023_sample.py", str(root)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    output_dir = root / "model"
    result = train_hf.main([
        str(REPO / "configs" / "mer2023_sample.yaml"), "--audio_backbone", str(root / "backbones" / "hubert"),
        "--vision_backbone", str(root / "backbones" / "vit"), "--data_dir", str(root / "data"),
        "--output_dir", str(output_dir), "--dataset_cache_dir", str(root / "cache"), "--disable_tqdm", "true",
        "--use_cpu",
    ])
    return {"root": root, "output_dir": output_dir, "result": result}


def test_offline_quick_run_learns_emotion_and_valence(trained):
    test = trained["result"]["results"]["test"]
    assert test["accuracy"] >= 0.5  # six classes: chance is 1/6
    assert test["valence_mse"] < 3.0  # the valence labels spread over about [-2.5, 2.2]
    folder = trained["output_dir"]
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"]["audio-visual-emotion-classification"]["impl"] == \
        "pipeline_mer2023.MER2023Pipeline"
    # the default audio layers fit the 4-layer backbone (HuBERT-large would get 18, 19, 20)
    assert config["feature_names"] == ["hubert_layer2", "hubert_layer3", "hubert_layer4", "vit"]
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor["auto_map"]["AutoFeatureExtractor"] == "processing_mer2023.MER2023Processor"
    assert processor["auto_map"]["AutoProcessor"] == "processing_mer2023.MER2023Processor"
    for name in ("README.md", "audio_backbone/config.json", "vision_backbone/preprocessor_config.json"):
        assert (folder / name).is_file(), name
    card = (folder / "README.md").read_text()
    # only the custom task (with valence) serves MER 2023: the card advertises no standard pipeline tag
    assert "pipeline_tag" not in card and 'pipeline("audio-visual-emotion-classification"' in card
    assert list(config["custom_pipelines"]) == ["audio-visual-emotion-classification"]


def test_predict_labels_a_folder_with_emotion_and_valence(trained, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    data = trained["root"] / "data"
    names = [line.split(",")[0] for line in (data / "test-label.csv").read_text().splitlines()[1:4]]
    for name in names:
        source = next(data.rglob(f"{name}.mp4"))
        shutil.copy(source, clips / source.name)
    (clips / "empty.mp4").write_bytes(b"")
    output = tmp_path / "predictions.csv"
    assert cli.main(["predict", str(clips), "--model", str(trained["output_dir"]), "--output", str(output),
                     "--quiet"]) == 0
    with open(output, newline="") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    assert "valence" in next(iter(rows.values())) and "prob_worried" in next(iter(rows.values()))
    assert "empty.mp4" in rows["empty.mp4"]["error"]
    for name in names:
        row = rows[f"{name}.mp4"]
        assert not row["error"] and row["label"] in ("neutral", "angry", "happy", "sad", "worried", "surprise")
        assert -10 < float(row["valence"]) < 10
        # six probabilities, each rounded to 4 decimals
        assert abs(sum(float(value) for key, value in row.items() if key.startswith("prob_")) - 1) <= 6 * 5e-5 + 1e-9


FRESH = """
import json, torch
from transformers import AutoFeatureExtractor, AutoModelForVideoClassification, AutoProcessor, pipeline
folder, clip = FOLDER, CLIP
model = AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
assert type(processor).__name__ == "MER2023Processor", type(processor)
features = processor(videos=[clip])["input_features"]
# every documented way to the processor gives one with the backbones: the same features
others = {"AutoFeatureExtractor": AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True),
          "class from_pretrained": type(processor).from_pretrained(folder)}
for name, other in others.items():
    assert type(other) is type(processor), (name, type(other))
    assert torch.equal(other(videos=[clip])["input_features"], features), name
with torch.no_grad():
    outputs = model(input_features=features)
classifier = pipeline("audio-visual-emotion-classification", model=folder, trust_remote_code=True)
result = classifier(clip)
print("REPORT " + json.dumps({"module": type(model).__module__, "pipeline": type(classifier).__name__,
                              "processor_module": type(classifier.processor).__module__,
                              "valence": float(outputs.valence.reshape(-1)[0]), "result": result,
                              "label": model.config.id2label[int(outputs.logits.argmax(-1))]}))
"""


@pytest.mark.smoke
@pytest.mark.parametrize("source", ["folder", "hub_cache"])
def test_saved_folder_loads_and_predicts_in_a_fresh_process_without_the_package(trained, tmp_path, source):
    """AutoProcessor, AutoFeatureExtractor, the class's from_pretrained and the pipeline, from the folder and from a
    Hugging Face cache (the folder laid out as a download of a Hub repo, loaded by repo id, offline)."""
    clip = str(next((trained["root"] / "data").rglob("*.mp4")))
    env = {"HF_MODULES_CACHE": str(tmp_path / "modules")}
    model_id = str(trained["output_dir"])
    if source == "hub_cache":
        model_id, revision = "org/mer2023-sample", "0123456789abcdef0123456789abcdef01234567"
        repo = tmp_path / "hub" / "models--org--mer2023-sample"
        shutil.copytree(trained["output_dir"], repo / "snapshots" / revision)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(revision)
        env["HF_HUB_CACHE"] = str(tmp_path / "hub")
    script = f"FOLDER, CLIP = {model_id!r}, {clip!r}\n" + FRESH
    done = run_without_package(script, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("REPORT "))[7:])
    assert report["module"].startswith("transformers_modules") and report["pipeline"] == "MER2023Pipeline"
    assert report["processor_module"].startswith("transformers_modules")
    assert report["result"]["label"] == report["label"]
    assert report["result"]["valence"] == pytest.approx(report["valence"], abs=1e-5)
    assert report["result"]["polarity"] in ("positive", "neutral", "negative")
