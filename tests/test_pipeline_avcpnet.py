"""The audio-visual-emotion-classification pipeline on generated clips with a tiny model."""

import json
import os

import pytest
import torch
from transformers import pipeline

from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip
from modeling_avcpnet.pipeline_avcpnet import TASK, AVCPNetPipeline

from fresh_process import run_without_package

POLARITIES = ("positive", "neutral", "negative")


def make_clips(folder):
    os.makedirs(folder, exist_ok=True)
    clips = [
        write_clip(os.path.join(folder, "red_low.mp4"), moving_square_frames(24, 48, 64), fps=12,
                   audio=tone(220, 2.0, 16000), sample_rate=16000),
        write_clip(os.path.join(folder, "blue_high.mp4"),
                   moving_square_frames(30, 64, 48, color=(40, 80, 250), speed=3), fps=15,
                   audio=tone(1800, 2.0, 16000, tempo_hz=3), sample_rate=16000),
        write_clip(os.path.join(folder, "silent.mp4"), moving_square_frames(24, 48, 64, color=(20, 220, 90)), fps=12),
    ]
    return clips


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_checkpoint):
    return {**tiny_checkpoint, "clips": make_clips(tmp_path_factory.mktemp("pipeline") / "clips")}


def manual_probabilities(model, processor, clips):
    """The reference: the processor in eval mode and the model, called directly."""
    inputs = processor(videos=clips, training=False, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    return logits.softmax(-1), inputs["audio_mask"]


def test_pipeline_equals_processor_and_model(checkpoint):
    classifier = pipeline(TASK, model=checkpoint["folder"], trust_remote_code=True, device="cpu")
    assert type(classifier).__name__ == "AVCPNetPipeline"
    model, clips = checkpoint["model"], checkpoint["clips"]
    probabilities, audio_mask = manual_probabilities(model, checkpoint["processor"], clips)
    assert audio_mask.tolist() == [True, True, False]
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    for batch_size in (1, 2):
        results = classifier(clips, batch_size=batch_size, top_k=len(labels))
        assert len(results) == len(clips)
        for result, expected, has_audio in zip(results, probabilities, audio_mask.tolist()):
            got = {item["label"]: item["score"] for item in result["labels"]}
            assert sorted(got) == sorted(labels)
            torch.testing.assert_close(torch.tensor([got[label] for label in labels]), expected,
                                       atol=1e-5, rtol=1e-4)
            assert [item["score"] for item in result["labels"]] == sorted(got.values(), reverse=True)
            assert result["label"] == labels[int(expected.argmax())]
            assert result["score"] == pytest.approx(float(expected.max()), abs=1e-5)
            # Polarity: summed probabilities of each polarity's classes, computed here by label name.
            sums = {p: sum(float(expected[i]) for i, label in enumerate(labels)
                           if model.config.label2polarity[label] == p) for p in POLARITIES}
            assert result["polarity_scores"] == pytest.approx(sums, abs=1e-5)
            assert result["polarity"] == max(sums, key=sums.get)
            assert result["polarity_score"] == pytest.approx(max(sums.values()), abs=1e-5)
            assert result["has_audio"] is has_audio


def test_pipeline_inputs_bytes_single_and_top_k(checkpoint):
    # Model and processor objects: the task registered by importing the package (no custom code involved).
    classifier = pipeline(TASK, model=checkpoint["model"], processor=checkpoint["processor"], device="cpu")
    assert type(classifier) is AVCPNetPipeline
    path = checkpoint["clips"][1]
    from_path = classifier(path)
    with open(path, "rb") as handle:
        from_bytes = classifier(handle.read())
    assert isinstance(from_path, dict) and len(from_path["labels"]) == 5  # default top_k, as built-in pipelines
    for a, b in zip(from_path["labels"], from_bytes["labels"]):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-6)
    assert len(classifier(path, top_k=2)["labels"]) == 2
    assert len(classifier(path, top_k=100)["labels"]) == 6

    # A separate soundtrack (as in the eMotions release, frames + mp3) for a clip that has none of its own.
    silent = checkpoint["clips"][2]
    soundtrack = write_clip(os.path.join(os.path.dirname(silent), "soundtrack.m4a"), audio=tone(500, 2.0, 16000),
                            sample_rate=16000)
    result = classifier({"video": silent, "audio": soundtrack}, top_k=6)
    inputs = checkpoint["processor"](videos=[silent], audio=[soundtrack], training=False, return_tensors="pt")
    with torch.no_grad():
        expected = checkpoint["model"](**inputs).logits.softmax(-1)[0]
    labels = checkpoint["model"].config.id2label
    got = {item["label"]: item["score"] for item in result["labels"]}
    assert result["has_audio"] is True
    torch.testing.assert_close(torch.tensor([got[labels[i]] for i in range(len(labels))]), expected,
                               atol=1e-5, rtol=1e-4)


def test_unreadable_input_names_the_file(checkpoint, tmp_path):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("hello")
    classifier = AVCPNetPipeline(model=checkpoint["model"], processor=checkpoint["processor"], device="cpu")
    with pytest.raises(ValueError, match="not_a_video.mp4"):
        classifier(str(bad))


def test_model_folder_without_processor_files(checkpoint, tmp_path):
    checkpoint["model"].save_pretrained(tmp_path / "model_only")
    (tmp_path / "model_only" / "processor_config.json").unlink()  # save_pretrained writes one: a folder that lost it
    with pytest.raises(ValueError, match="no processor files.*processor_config.json"):
        pipeline(TASK, model=str(tmp_path / "model_only"), trust_remote_code=True, device="cpu")


def test_saved_folder_loads_in_fresh_process_without_the_package(checkpoint, tmp_path):
    clips = checkpoint["clips"]
    probabilities, _ = manual_probabilities(checkpoint["model"], checkpoint["processor"], clips)
    script = f"""
        import json
        from transformers import pipeline

        classifier = pipeline({TASK!r}, model={checkpoint["folder"]!r}, trust_remote_code=True, device="cpu")
        results = classifier({clips!r}, batch_size=2, top_k=6)
        print(json.dumps({{"class": type(classifier).__module__ + "." + type(classifier).__name__,
                          "results": results}}))
    """
    done = run_without_package(script, cwd=tmp_path, env={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["class"].startswith("transformers_modules.")  # the copy saved in the folder, not our package
    labels = checkpoint["model"].config.id2label
    for result, expected in zip(answer["results"], probabilities):
        got = {item["label"]: item["score"] for item in result["labels"]}
        torch.testing.assert_close(torch.tensor([got[labels[i]] for i in range(len(labels))]), expected,
                                   atol=1e-5, rtol=1e-4)
