"""AVCPNetProcessor / AVCPNetVideoProcessor / AVCPNetFeatureExtractor: sampling, tensors, audio, bad files, saving."""

import json
import warnings

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoProcessor, AutoVideoProcessor, set_seed
from transformers.video_utils import load_video

from datasets_emotions.synthetic_media import (
    moving_square_frames,
    tone,
    write_clip,
    write_frame_folder,
)
from modeling_avcpnet import (
    AVCPNetConfig,
    AVCPNetFeatureExtractor,
    AVCPNetProcessor,
    AVCPNetVideoProcessor,
    MissingAudioWarning,
    VideoDecodingError,
)

from fresh_process import run_without_package


def decode(video_processor, video):
    """The sampled frames of one video before cropping, `(T, H, W, 3)` uint8, and the frame indices taken."""
    frames, metadata = video_processor.decode_video(video, video_processor.sample_frames)
    return frames, metadata.frames_indices


@pytest.fixture(scope="module")
def config():
    return AVCPNetConfig.tiny()  # 2 segments x 4 frames at 32x32, 64 MFCC frames in 2 segments


@pytest.fixture(scope="module")
def processor(config):
    return AVCPNetProcessor.from_model_config(config)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("processing")
    frames = moving_square_frames(75, 48, 64)
    return {
        "root": root,
        "frames": frames,
        "av": write_clip(root / "av.mp4", frames, fps=30, audio=tone(440, 2.5), gop_size=10),
        "av2": write_clip(root / "av2.mp4", frames[::-1].copy(), fps=30, audio=tone(880, 2.5, tempo_hz=3),
                          gop_size=10),
        "silent": write_clip(root / "silent.mp4", frames, fps=30, gop_size=10),
        "two_seconds": write_clip(root / "two_seconds.mp4", frames[:60], fps=30, gop_size=30),
    }


# -- sampling -------------------------------------------------------------------------------------------------------


def test_eval_sampling_takes_the_centred_snippet_of_each_segment(processor):
    video_processor = processor.video_processor
    # 75 frames in 2 segments: [0, 37) and [37, 75); 4 frames centred in each.
    np.testing.assert_array_equal(video_processor.sample_indices(75), [16, 17, 18, 19, 54, 55, 56, 57])
    np.testing.assert_array_equal(video_processor.sample_indices(75), video_processor.sample_indices(75))


def test_train_sampling_is_seedable_random_and_stays_in_its_segment(processor):
    video_processor = processor.video_processor
    set_seed(3)
    first = [video_processor.sample_indices(1000, training=True) for _ in range(5)]
    set_seed(3)
    again = [video_processor.sample_indices(1000, training=True) for _ in range(5)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)  # reproducible with a seed
    assert len({tuple(a) for a in first}) == 5  # different across calls (epochs)
    for indices in first:
        snippets = indices.reshape(2, 4)
        assert (np.diff(snippets, axis=1) == 1).all()  # consecutive frames
        assert snippets[0].min() >= 0 and snippets[0].max() < 500 and snippets[1].min() >= 500
    generator = torch.Generator().manual_seed(7)
    from_generator = video_processor.sample_indices(1000, training=True, generator=generator)
    np.testing.assert_array_equal(
        from_generator, video_processor.sample_indices(1000, training=True, generator=torch.Generator().manual_seed(7)))


def test_short_clips_are_loop_padded_with_every_requested_frame(media):
    # 16 x 8 = 128 frames from a 2-s clip (60 frames): transformers' sample_indices_fn path returns 6 frames here.
    video_processor = AVCPNetVideoProcessor(do_resize=False)
    frames, indices = decode(video_processor, media["two_seconds"])
    expected = np.arange(128) % 60
    np.testing.assert_array_equal(indices, expected)
    reference, _ = load_video(media["two_seconds"], backend="pyav")
    assert frames.shape == (128, 48, 64, 3)
    np.testing.assert_array_equal(frames, reference[expected])


@pytest.mark.parametrize("num_frames", [1, 3])
def test_one_frame_and_shorter_than_one_segment(tmp_path, processor, num_frames):
    frames = moving_square_frames(num_frames, 48, 64)
    path = write_clip(tmp_path / f"tiny{num_frames}.mp4", frames, fps=30)
    frames, indices = decode(processor.video_processor, path)
    np.testing.assert_array_equal(indices, np.arange(8) % num_frames)
    with pytest.warns(MissingAudioWarning, match=f"tiny{num_frames}.mp4: has no audio stream"):
        batch = processor(videos=path, audio=[None])
    assert batch["pixel_values_videos"].shape == (1, 2, 4, 3, 32, 32)
    flat = batch["pixel_values_videos"][0].reshape(8, 3, 32, 32)
    for position in range(8):  # frame i of the clip is frame i % num_frames of the file
        torch.testing.assert_close(flat[position], flat[position % num_frames])
    assert not torch.equal(flat[0], flat[1]) or num_frames == 1


def test_video_processor_honours_the_base_class_sampling_arguments(processor, media):
    video_processor = processor.video_processor
    default = video_processor(media["av"])["pixel_values_videos"]
    torch.testing.assert_close(video_processor(media["av"], do_sample_frames=True, num_frames=8)["pixel_values_videos"],
                               default)
    with pytest.raises(ValueError, match=r"num_segments \* frames_per_segment = 2 \* 4 = 8 frames .* num_frames=6"):
        video_processor(media["av"], num_frames=6)
    with pytest.raises(ValueError, match="sampling by fps is not supported"):
        video_processor(media["av"], fps=2)
    # return_metadata: the base class's VideoMetadata, with the frames taken.
    batch = video_processor(media["av"], return_metadata=True)
    metadata = batch["video_metadata"][0]
    assert metadata.total_num_frames == 75 and metadata.fps == pytest.approx(30)
    np.testing.assert_array_equal(metadata.frames_indices, [16, 17, 18, 19, 54, 55, 56, 57])
    # do_sample_frames=False: a clip that already holds exactly the sampled frames is only transformed.
    reference, _ = load_video(media["av"], backend="pyav")
    frames = reference[metadata.frames_indices]
    unsampled = video_processor(frames, do_sample_frames=False)["pixel_values_videos"]
    torch.testing.assert_close(unsampled, video_processor(reference)["pixel_values_videos"])
    assert (unsampled - default).abs().mean() < 0.03  # resized in torch vs FFmpeg: the same picture
    with pytest.raises(ValueError, match=r"must have num_segments \* frames_per_segment = 8 frames, got 75"):
        video_processor(reference, do_sample_frames=False)
    # The processor passes the same arguments through, and rejects others.
    torch.testing.assert_close(processor(videos=[media["av"]], num_frames=8)["pixel_values_videos"], default)
    with pytest.raises(TypeError, match=r"unexpected arguments \[.audio_sample_rate.\]"):
        processor(videos=[media["av"]], audio_sample_rate=16000)


# -- tensors --------------------------------------------------------------------------------------------------------


def test_outputs_feed_the_model_and_match_a_manual_transform(processor, media, config):
    batch = processor(videos=[media["av"], media["av2"]])
    assert batch["pixel_values_videos"].shape == (2, 2, 4, 3, 32, 32)
    assert batch["pixel_values_videos"].dtype == torch.float32
    assert batch["input_features"].shape == (2, 2, 32, 32) and batch["input_features"].dtype == torch.float32
    assert batch["audio_mask"].tolist() == [True, True]
    assert batch.kept_indices == [0, 1] and batch.errors == {}

    # Manual eval transform: short side 32 (43 x 32 frames), centre crop 32 x 32 (torchvision's centre crop starts
    # at round((43 - 32) / 2) = 6), then x / 255 - 100 / 255.
    frames, indices = decode(processor.video_processor, media["av"])
    assert frames.shape == (8, 32, 43, 3)
    manual = frames[:, :, 6:38].astype(np.float32) / 255 - 100 / 255
    manual = torch.from_numpy(manual).permute(0, 3, 1, 2).reshape(2, 4, 3, 32, 32)
    torch.testing.assert_close(batch["pixel_values_videos"][0], manual)

    from modeling_avcpnet import AVCPNetForVideoClassification

    model = AVCPNetForVideoClassification(config).eval()
    with torch.no_grad():
        outputs = model(**batch)
    assert outputs.logits.shape == (2, config.num_labels)


def test_training_mode_is_reproducible_and_varies(processor, media):
    videos = [media["av"]]
    set_seed(11)
    first = processor(videos=videos, training=True)["pixel_values_videos"]
    set_seed(11)
    again = processor(videos=videos, training=True)["pixel_values_videos"]
    torch.testing.assert_close(first, again)
    later = [processor(videos=videos, training=True)["pixel_values_videos"] for _ in range(2)]
    assert all(not torch.equal(first, other) for other in later)
    evaluation = [processor(videos=videos)["pixel_values_videos"] for _ in range(2)]
    torch.testing.assert_close(evaluation[0], evaluation[1])


def test_input_kinds_give_the_same_frames(processor, media, tmp_path):
    from_path = processor.video_processor(media["av"])["pixel_values_videos"]
    data = open(media["av"], "rb").read()
    with open(media["av"], "rb") as handle:
        others = processor.video_processor([data, handle])["pixel_values_videos"]
    torch.testing.assert_close(others[0], from_path[0])
    torch.testing.assert_close(others[1], from_path[0])
    # A decoded array (as returned by load_video, with its metadata) is sampled by the same indices.
    decoded = load_video(media["av"], backend="pyav")
    from_array = processor.video_processor(decoded)["pixel_values_videos"]
    # Arrays are resized in torch (antialiased), files in FFmpeg's scaler: the same picture, not the same bits.
    assert (from_array - from_path).abs().mean() < 0.03


def test_frame_folder_with_mp3_soundtrack(processor, media, tmp_path):
    # The eMotions release layout: extracted frames 000001.jpg ... and an mp3 beside them.
    folder = write_frame_folder(tmp_path / "clip_0001", media["frames"])
    soundtrack = write_clip(tmp_path / "clip_0001.mp3", audio=tone(440, 2.5))
    batch = processor(videos=[folder], audio=[soundtrack])
    from_video = processor(videos=[media["av"]])
    assert batch["pixel_values_videos"].shape == (1, 2, 4, 3, 32, 32)
    assert (batch["pixel_values_videos"] - from_video["pixel_values_videos"]).abs().mean() < 0.03  # JPEG vs H.264
    assert batch["audio_mask"].tolist() == [True]
    # The same tone through mp3 and through AAC gives nearly the same MFCC.
    difference = (batch["input_features"] - from_video["input_features"]).abs().mean()
    assert difference < 0.1 * from_video["input_features"].abs().mean()


def test_empty_frame_folder_raises(processor, tmp_path):
    (tmp_path / "empty_clip").mkdir()
    with pytest.raises(VideoDecodingError, match="empty_clip: folder holds no frame images"):
        processor(videos=[str(tmp_path / "empty_clip")])


# -- audio ----------------------------------------------------------------------------------------------------------


def test_no_audio_stream_gives_zero_features_mask_false_and_one_warning(processor, media):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = processor(videos=[media["av"], media["silent"]])
    missing = [w for w in caught if issubclass(w.category, MissingAudioWarning)]
    assert len(missing) == 1 and "silent.mp4: has no audio stream" in str(missing[0].message)
    assert batch["audio_mask"].tolist() == [True, False]
    assert torch.count_nonzero(batch["input_features"][1]) == 0
    assert torch.count_nonzero(batch["input_features"][0]) > 0


def test_mfcc_matches_the_waveform_decoded_separately(processor, media):
    import av

    with av.open(media["av"]) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=44100)
        chunks = [out.to_ndarray()[0] for frame in container.decode(audio=0) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray()[0] for out in resampler.resample(None)]
    waveform = np.concatenate(chunks)
    features = processor.feature_extractor(waveform)["input_features"]
    torch.testing.assert_close(processor(videos=[media["av"]])["input_features"], features)


def test_feature_extractor_crops_tiles_and_resamples():
    extractor = AVCPNetFeatureExtractor(audio_length=64, audio_segments=4)
    # n_fft 2048 and 128 mel bands at 44.1 kHz: no empty mel filter (torchaudio's n_fft 400 default leaves some).
    extractor.mfcc(np.zeros(4096, np.float32))
    assert (extractor._mfcc_transform.mel_filters.sum(0) > 0).all()

    long_wave = tone(440, 2.0, tempo_hz=4)[0]  # 1 + 88200 // 512 = 173 MFCC frames
    full = extractor.mfcc(long_wave)
    assert full.shape == (173, 32)
    features = extractor([long_wave])["input_features"]
    assert features.shape == (1, 4, 16, 32)
    torch.testing.assert_close(features[0].reshape(64, 32), full[54:118])  # centre crop

    short_wave = long_wave[:10240]  # 21 frames, tiled to 64
    short = extractor.mfcc(short_wave)
    tiled = extractor([short_wave])["input_features"][0].reshape(64, 32)
    torch.testing.assert_close(tiled, torch.cat([short, short, short, short])[:64])

    # A 22.05 kHz waveform is resampled to 44.1 kHz first.
    half_rate = tone(440, 2.0, sample_rate=22050, tempo_hz=4)[0]
    resampled = extractor([half_rate], sampling_rate=22050)["input_features"]
    assert (resampled - features).abs().mean() < 0.05 * features.abs().mean()

    batch = extractor([long_wave, None, np.zeros(0, np.float32)])
    assert batch["audio_mask"].tolist() == [True, False, False]
    assert torch.count_nonzero(batch["input_features"][1:]) == 0


# -- bad files in a batch -------------------------------------------------------------------------------------------


def test_skip_bad_files_keeps_the_good_samples(processor, media, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "readme.mp4"
    text.write_text("not a video\n" * 50)
    song = write_clip(tmp_path / "song.m4a", audio=tone(300, 1.0))
    videos = [media["av"], str(empty), media["silent"], str(text), song]

    # The decision (issue 22.4): a batch raises by default (it never silently loses rows, which would misalign it
    # with the caller's labels); the one-line message names the file, its position and the option that skips it.
    with pytest.raises(VideoDecodingError) as raised:
        processor(videos=videos)
    assert str(raised.value) == (f"{empty}: file is empty (0 bytes) (input 1 of 5; pass skip_bad_files=True to "
                                 "leave undecodable files out of the batch (batch.kept_indices and batch.errors say "
                                 "which), or use the pipeline, which gives one result per input)")
    from transformers import AutoProcessor

    saved = tmp_path / "saved"
    processor.save_pretrained(saved)
    with pytest.raises(ValueError, match=r"empty.mp4: file is empty \(0 bytes\) \(input 1 of 5; pass skip_bad"):
        AutoProcessor.from_pretrained(saved)(videos=videos)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingAudioWarning)
        batch = processor(videos=videos, skip_bad_files=True)
    assert batch.kept_indices == [0, 2]
    assert sorted(batch.errors) == [1, 3, 4]
    assert batch.errors[1] == f"{empty}: file is empty (0 bytes)"
    assert str(text) in batch.errors[3] and "not a readable media file" in batch.errors[3]
    assert "song.m4a: has no video stream (an audio-only file)" in batch.errors[4]
    assert batch["pixel_values_videos"].shape[0] == batch["input_features"].shape[0] == 2
    assert batch["audio_mask"].tolist() == [True, False]
    good = processor(videos=[media["av"]])
    torch.testing.assert_close(batch["pixel_values_videos"][:1], good["pixel_values_videos"])
    assert set(batch.keys()) == {"pixel_values_videos", "input_features", "audio_mask"}

    nothing = processor(videos=[str(empty)], skip_bad_files=True)
    assert nothing["pixel_values_videos"].shape == (0, 2, 4, 3, 32, 32) and nothing.kept_indices == []


def test_bad_separate_soundtrack_is_a_bad_sample(processor, media, tmp_path):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodingError, match="empty.mp3: file is empty"):
        processor(videos=[media["av"]], audio=[str(empty)])


# -- saving and loading ---------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_from_model_config_and_save_load_round_trip(processor, config, media, tmp_path):
    assert processor.video_processor.size.shortest_edge == config.image_size
    assert processor.video_processor.num_segments == config.num_segments
    assert processor.feature_extractor.audio_length == config.audio_length
    custom = AVCPNetProcessor.from_model_config(config, augment_probability=0.0, n_fft=1024)
    assert custom.video_processor.augment_probability == 0.0 and custom.feature_extractor.n_fft == 1024
    with pytest.raises(TypeError, match="unknown override 'nfft'"):
        AVCPNetProcessor.from_model_config(config, nfft=1024)

    processor.save_pretrained(tmp_path)
    saved = json.load(open(tmp_path / "processor_config.json"))
    assert saved["video_processor"]["auto_map"]["AutoVideoProcessor"] == \
        "video_processing_avcpnet.AVCPNetVideoProcessor"
    assert saved["feature_extractor"]["auto_map"]["AutoFeatureExtractor"] == \
        "feature_extraction_avcpnet.AVCPNetFeatureExtractor"
    for name in ("processing_avcpnet.py", "video_processing_avcpnet.py", "feature_extraction_avcpnet.py",
                 "media_avcpnet.py"):
        assert (tmp_path / name).exists(), name

    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, AVCPNetProcessor)
    assert isinstance(AutoVideoProcessor.from_pretrained(tmp_path), AVCPNetVideoProcessor)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path), AVCPNetFeatureExtractor)
    assert loaded.video_processor.to_dict() == processor.video_processor.to_dict()
    assert loaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
    expected = processor(videos=[media["av"]])
    actual = loaded(videos=[media["av"]])
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key])


@pytest.mark.smoke
def test_loads_with_trust_remote_code_next_to_the_model_in_a_fresh_process(processor, config, media, tmp_path):
    from modeling_avcpnet import AVCPNetForVideoClassification

    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config).eval()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    with torch.no_grad():
        expected = model(**processor(videos=[media["av"]])).logits
    np.save(tmp_path / "expected.npy", expected.numpy())
    script = f"""
        import numpy as np, torch
        from transformers import AutoModelForVideoClassification, AutoProcessor
        folder = {str(tmp_path)!r}
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        model = AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
        with torch.no_grad():
            logits = model(**processor(videos=[{media["av"]!r}])).logits
        np.testing.assert_allclose(logits.numpy(), np.load(folder + "/expected.npy"), atol=1e-5)
        print("OK")
    """
    result = run_without_package(script, cwd=tmp_path, env={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


def test_long_soundtrack_features_match_the_full_waveform(processor, media, tmp_path):
    # The processor decodes only the central seconds of a long soundtrack that the centre-cropped MFCC covers.
    seconds = np.arange(20 * 44100) / 44100
    chirp = (0.3 * np.sin(2 * np.pi * (200 * seconds + 45 * seconds**2))).astype(np.float32)
    soundtrack = write_clip(tmp_path / "long.m4a", audio=chirp[None])
    from_file = processor(videos=[media["av"]], audio=[soundtrack])["input_features"]
    from_waveform = processor.feature_extractor([chirp])["input_features"]
    assert (from_file - from_waveform).abs().mean() < 0.02 * from_waveform.abs().mean()


def test_variable_frame_rate_and_rotated_files_give_the_reference_frames(media, tmp_path):
    frames = media["frames"]
    times = np.concatenate([[0.0], np.cumsum(np.random.default_rng(1).uniform(0.005, 0.1, 74))])
    vfr = write_clip(tmp_path / "vfr.mp4", frames, fps=30, gop_size=10, frame_times=times)
    rotated = write_clip(tmp_path / "rotated.mp4", frames, fps=30, gop_size=10, rotation=90)
    video_processor = AVCPNetVideoProcessor(do_resize=False, num_segments=4, frames_per_segment=3)
    for path, turns in ((vfr, 0), (rotated, 1)):
        frames, indices = decode(video_processor, path)
        reference, _ = load_video(path, backend="pyav")
        upright = np.stack([np.rot90(frame, k=turns) for frame in reference])
        np.testing.assert_array_equal(frames, upright[indices])
    assert frames.shape[1:] == (64, 48, 3)  # the rotated clip comes out portrait
