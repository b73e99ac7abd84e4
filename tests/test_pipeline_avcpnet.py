"""The audio-visual-emotion-classification pipeline on generated clips with a tiny model."""

import json
import os
import warnings

import numpy as np
import pytest
import torch
from transformers import pipeline

from datasets_emotions.synthetic_media import moving_square_frames, tone, truncated_copy, write_clip
from modeling_avcpnet.pipeline_avcpnet import (
    TASK,
    VIDEO_TASK,
    AVCPNetPipeline,
    AVCPNetVideoClassificationPipeline,
)
from modeling_avcpnet.processing_avcpnet import MissingAudioWarning

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


def make_bad_files(folder, good):
    """The bad inputs of a real folder: a 0-byte file, a download cut short, a text file named .mp4."""
    os.makedirs(folder, exist_ok=True)
    empty = os.path.join(folder, "empty.mp4")
    open(empty, "wb").close()
    text = os.path.join(folder, "notes.mp4")
    with open(text, "w") as handle:
        handle.write("not a video\n" * 40)
    return {"empty": empty, "truncated": truncated_copy(good, os.path.join(folder, "truncated.mp4"), 0.5),
            "text": text}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("pipeline")
    clips = make_clips(root / "clips")
    return {**tiny_checkpoint, "clips": clips, "bad": make_bad_files(root / "bad", clips[0])}


def manual_probabilities(model, processor, clips):
    """The reference: the processor in eval mode and the model, called directly."""
    inputs = processor(videos=clips, training=False, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    return logits.softmax(-1), inputs["audio_mask"]


@pytest.mark.smoke
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


def mixed_inputs(checkpoint):
    """good, 0-byte, good without audio, truncated, text-as-mp4, good: (inputs, names of the bad ones by position)."""
    good, other, silent = checkpoint["clips"]
    bad = checkpoint["bad"]
    inputs = [good, bad["empty"], silent, bad["truncated"], bad["text"], other]
    return inputs, {1: "empty.mp4: file is empty", 3: "truncated.mp4: ", 4: "notes.mp4: not a readable media file"}


@pytest.mark.parametrize("task", [TASK, VIDEO_TASK])
def test_bad_inputs_give_error_entries_and_never_cost_the_others(checkpoint, task):
    classifier = pipeline(task, model=checkpoint["folder"], trust_remote_code=True, device="cpu")
    inputs, bad = mixed_inputs(checkpoint)
    good = [path for position, path in enumerate(inputs) if position not in bad]
    probabilities, audio_mask = manual_probabilities(checkpoint["model"], checkpoint["processor"], good)
    assert audio_mask.tolist() == [True, False, True]  # the file without an audio stream is classified visually
    labels = checkpoint["model"].config.id2label
    for batch_size in (1, 4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingAudioWarning)
            results = classifier(inputs, batch_size=batch_size, top_k=6)
        assert len(results) == len(inputs)
        expected = iter(zip(probabilities, audio_mask.tolist()))
        for position, result in enumerate(results):
            entry = result if task == TASK else result[0]
            if position in bad:
                assert inputs[position] in entry["error"] and bad[position] in entry["error"], entry
                assert entry["label"] is None and entry["score"] is None
                continue
            wanted, has_audio = next(expected)
            scores = {item["label"]: item["score"] for item in (result["labels"] if task == TASK else result)}
            torch.testing.assert_close(torch.tensor([scores[labels[i]] for i in range(len(labels))]), wanted,
                                       atol=1e-5, rtol=1e-4)
            if task == TASK:
                assert entry["error"] is None and entry["has_audio"] is has_audio
            else:
                assert set(entry) == {"score", "label"}  # the built-in pipeline's format

    # A single bad input: one error entry; on_error="raise" raises the processor's error, naming the file.
    single = classifier(inputs[1])
    assert (single if task == TASK else single[0])["error"].endswith("empty.mp4: file is empty (0 bytes)")
    with pytest.raises(ValueError, match="notes.mp4: not a readable media file"):
        classifier(inputs[4], on_error="raise")


def test_video_classification_pipeline_takes_the_base_sampling_arguments(checkpoint):
    model, processor = checkpoint["model"], checkpoint["processor"]
    classifier = pipeline(VIDEO_TASK, model=model, processor=processor, device="cpu",
                          pipeline_class=AVCPNetVideoClassificationPipeline)
    path = checkpoint["clips"][0]
    default = classifier(path, top_k=3)
    assert classifier(path, num_frames=8, top_k=3) == default  # 2 segments x 4 frames
    assert len(default) == 3 and default[0]["score"] >= default[1]["score"] >= default[2]["score"]
    with pytest.raises(ValueError, match=r"exactly num_segments \* frames_per_segment = 2 \* 4 = 8 frames"):
        classifier(path, num_frames=16)
    with pytest.raises(ValueError, match="frame_sampling_rate is not supported"):
        classifier(path, frame_sampling_rate=2)

    # A decoded array has no soundtrack: classified from vision alone, with a warning naming the reason.
    frames = np.stack(list(moving_square_frames(24, 48, 64)))
    with pytest.warns(MissingAudioWarning, match="no soundtrack given"):
        result = classifier(frames, top_k=6)
    inputs = processor(videos=[path], return_tensors="pt")
    visual = processor.video_processor(frames)["pixel_values_videos"]
    with torch.no_grad():
        expected = model(pixel_values_videos=visual, input_features=torch.zeros_like(inputs["input_features"]),
                         audio_mask=torch.tensor([False])).logits.softmax(-1)[0]
    got = {item["label"]: item["score"] for item in result}
    torch.testing.assert_close(torch.tensor([got[model.config.id2label[i]] for i in range(6)]), expected,
                               atol=1e-5, rtol=1e-4)


def test_model_folder_without_processor_files(checkpoint, tmp_path):
    checkpoint["model"].save_pretrained(tmp_path / "model_only")
    (tmp_path / "model_only" / "processor_config.json").unlink()  # save_pretrained writes one: a folder that lost it
    with pytest.raises(ValueError, match="no processor files.*processor_config.json"):
        pipeline(TASK, model=str(tmp_path / "model_only"), trust_remote_code=True, device="cpu")


@pytest.mark.smoke
def test_saved_folder_loads_in_fresh_process_without_the_package(checkpoint, tmp_path):
    clips = checkpoint["clips"]
    probabilities, _ = manual_probabilities(checkpoint["model"], checkpoint["processor"], clips)
    inputs = clips + [checkpoint["bad"]["empty"]]
    script = f"""
        import json
        from transformers import pipeline

        classifier = pipeline({TASK!r}, model={checkpoint["folder"]!r}, trust_remote_code=True, device="cpu")
        results = classifier({inputs!r}, batch_size=2, top_k=6)
        standard = pipeline("video-classification", model={checkpoint["folder"]!r}, trust_remote_code=True,
                            device="cpu")
        print(json.dumps({{"class": type(classifier).__module__ + "." + type(classifier).__name__,
                          "results": results, "standard": standard({inputs!r}, top_k=6),
                          "standard_class": type(standard).__name__}}))
    """
    done = run_without_package(script, cwd=tmp_path, env={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["class"].startswith("transformers_modules.")  # the copy saved in the folder, not our package
    assert answer["standard_class"] == "AVCPNetVideoClassificationPipeline"
    labels = checkpoint["model"].config.id2label
    for result, standard, expected in zip(answer["results"], answer["standard"], probabilities):
        for scores in ({item["label"]: item["score"] for item in result["labels"]},
                       {item["label"]: item["score"] for item in standard}):
            torch.testing.assert_close(torch.tensor([scores[labels[i]] for i in range(len(labels))]), expected,
                                       atol=1e-5, rtol=1e-4)
    assert "empty.mp4: file is empty" in answer["results"][-1]["error"]
    assert "empty.mp4: file is empty" in answer["standard"][-1][0]["error"]


def test_every_input_form_of_the_ecosystem_gives_one_result_each(checkpoint, tmp_path):
    """Issue 22.3: paths, PathLike, bytes, file objects, `datasets` media dicts (with and without bytes), rows of the
    project's Parquet export (a `datasets.Dataset` or a list of its rows) and `{"video", "audio"}` dicts with a
    decoded soundtrack; bad inputs of any form give an error entry in their place, never lose the batch."""
    import datasets
    from pathlib import Path

    from datasets_emotions.export import export_to_parquet

    classifier = pipeline(TASK, model=checkpoint["model"], processor=checkpoint["processor"], device="cpu")
    good, other, silent = checkpoint["clips"]
    reference = {path: classifier(path, top_k=6)["labels"] for path in (good, other)}

    def same(result, path):
        assert result["error"] is None, result
        for a, b in zip(result["labels"], reference[path]):
            assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-5)

    with open(good, "rb") as handle:
        data = handle.read()
    handle = open(other, "rb")
    forms = [
        (Path(good), good), (data, good), (handle, other),
        ({"bytes": data, "path": "clips/good.mp4"}, good),     # datasets Video(decode=False), embedded
        ({"bytes": None, "path": other}, other),                # datasets Video(decode=False), path only
        ({"video": {"bytes": None, "path": good}, "audio": None, "label": 3}, good),  # a row, its own soundtrack
        ({"video": good, "audio": ""}, good),
    ]
    bad = [42, {"foo": 1}, {"video": [good, other]}, {"bytes": None, "path": None}, {"video": "", "video_id": "x"}]
    inputs = [form for form, _ in forms] + bad
    for batch_size in (1, 4):
        handle.seek(0)
        results = classifier(inputs, batch_size=batch_size, top_k=6)
        assert len(results) == len(inputs)
        for result, (_, path) in zip(results, forms):
            same(result, path)
        errors = [result["error"] for result in results[len(forms):]]
        assert all(error for error in errors) and all(result["label"] is None for result in results[len(forms):])
        assert "not a supported input" in errors[0] and "needs a 'video' key" in errors[1]
        assert "a batch of rows" in errors[2] and "no media" in errors[3] and errors[4].startswith("x:")
    handle.close()
    with pytest.raises(ValueError, match="not a supported input"):
        classifier(42, on_error="raise")

    # A decoded soundtrack ({"array", "sampling_rate"}, datasets' Audio) next to a silent video.
    waveform = tone(500, 2.0, 16000).astype(np.float32)
    with_array = classifier({"video": silent, "audio": {"array": waveform, "sampling_rate": 16000}}, top_k=6)
    assert with_array["error"] is None and with_array["has_audio"] is True

    # The project's own Parquet export, loaded with plain `datasets`: a Dataset or its rows, one result per row.
    features = datasets.Features({"video": datasets.Value("string"), "audio": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["a", "b", "c"])})
    source = datasets.Dataset.from_dict({"video": [good, other, checkpoint["bad"]["empty"]], "audio": ["", "", ""],
                                         "label": [0, 1, 2]}, features=features)
    exported = datasets.load_dataset(export_to_parquet(source, str(tmp_path / "export")), split="train")
    assert set(exported[0]["video"]) == {"bytes", "path"}
    for rows in (exported, list(exported)):
        results = classifier(rows, batch_size=2, top_k=6)
        assert len(results) == 3
        same(results[0], good), same(results[1], other)
        assert results[2]["error"].endswith("empty.mp4: no data (0 bytes)")

    # transformers' own video-classification task takes the same forms
    standard = pipeline(VIDEO_TASK, model=checkpoint["model"], processor=checkpoint["processor"], device="cpu",
                        pipeline_class=AVCPNetVideoClassificationPipeline)
    results = standard(exported, top_k=1)
    assert len(results) == 3 and results[0][0]["label"] == reference[good][0]["label"] and "error" in results[2][0]
