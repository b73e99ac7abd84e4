"""Processor for AV-CPNet: one call turns video files (and optional separate soundtracks) into model inputs.

`processor(videos=paths)` returns a `BatchFeature` with `pixel_values_videos` `(B, S, F, 3, H, W)` float32,
`input_features` `(B, A, T, n_mfcc)` float32 and `audio_mask` `(B,)` bool, so that `model(**processor(...))` works.
A media file is opened once (through the media layer): the demuxing pass that indexes its video packets also
decodes its audio track; the video processor then reads only the sampled frames from that open file, and the
feature extractor turns the soundtrack into MFCC. Which samples are kept when some cannot be decoded
(`skip_bad_files`) is decided here, once.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from typing import Any, Optional

import numpy as np
import torch

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .feature_extraction_avcpnet import AVCPNetFeatureExtractor
from .media_avcpnet import (MediaError, MediaReader, MissingAudioWarning, VideoDecodingError, describe_source,
                            is_media_error)
from .video_processing_avcpnet import AVCPNetVideoProcessor, make_video_list


# How a caller whose batch raised for one bad file keeps the others (said in the error of a batch of several).
SKIP_HINT = ("pass skip_bad_files=True to leave undecodable files out of the batch (batch.kept_indices and "
             "batch.errors say which), or use the pipeline, which gives one result per input")


class AVCPNetProcessor(ProcessorMixin):
    r"""
    Wraps an [`AVCPNetVideoProcessor`] and an [`AVCPNetFeatureExtractor`].

    Call with `videos` (one or a list: paths, bytes, file objects, frame folders `000001.jpg ...`, or decoded
    `(T, H, W, 3)` uint8 arrays) and optionally `audio` (one per video: a soundtrack file path / bytes / file object,
    a mono waveform array at `sampling_rate`, or `None` to use the video file's own audio track). Frame folders and
    arrays have no audio of their own. A sample without usable audio gets zero features, `audio_mask` False and one
    `MissingAudioWarning` naming the file (Python's warning filter shows it once per file).

    Other arguments: `skip_bad_files` (see below), `sampling_rate` (of waveform arrays passed as `audio`; defaults
    to the feature extractor's), `mfcc` (one per video, or None: a soundtrack's precomputed
    [`~AVCPNetProcessor.soundtrack_mfcc`] `(frames, num_mfcc)`, used instead of decoding it again, as the training
    media cache does; an entry that is None or has no frames means "decode the soundtrack as usual"), `return_tensors` (`"pt"` or `"np"`), and the video processor's arguments, e.g.
    `training` (random sampling and augmentation, from `generator` or torch's global RNG), `generator`
    (`torch.Generator`), `do_sample_frames`, `num_frames` (see [`AVCPNetVideoProcessor`]).

    `skip_bad_files=False` (default, as transformers' processors: a batch never silently loses rows, so it stays
    aligned with the caller's labels): the first sample whose video or soundtrack cannot be decoded raises
    `MediaError` (a `ValueError` naming the file and the problem; in a batch of several, also its position and
    this option). `skip_bad_files=True`: such samples are
    left out of every output tensor; the returned `BatchFeature` has the attributes `kept_indices` (positions in
    the input list of the rows of the batch, in order) and `errors` (dict: input position -> error message), which
    are not dictionary keys, so `model(**batch)` works. Example: inputs `[good, bad, good]` give a batch of 2 rows,
    `batch.kept_indices == [0, 2]`, `batch.errors == {1: "bad.mp4: file is empty (0 bytes)"}`.
    """

    def __init__(self, video_processor: Optional[AVCPNetVideoProcessor] = None,
                 feature_extractor: Optional[AVCPNetFeatureExtractor] = None, **kwargs):
        video_processor = video_processor if video_processor is not None else AVCPNetVideoProcessor()
        feature_extractor = feature_extractor if feature_extractor is not None else AVCPNetFeatureExtractor()
        super().__init__(video_processor, feature_extractor, **kwargs)

    @classmethod
    def from_model_config(cls, config, **overrides) -> "AVCPNetProcessor":
        """The processor matching an `AVCPNetConfig`: frame size, segments and frames per segment, MFCC
        coefficients, audio length and segments. `overrides` go to whichever component takes them (e.g.
        `augment_probability=0`, `decode_threads=1`, `n_fft=1024`)."""
        video_kwargs = dict(size={"shortest_edge": config.image_size},
                            crop_size={"height": config.image_size, "width": config.image_size},
                            num_segments=config.num_segments, frames_per_segment=config.frames_per_segment)
        audio_kwargs = dict(num_mfcc=config.num_mfcc, audio_length=config.audio_length,
                            audio_segments=config.audio_segments)
        video_names = set(AVCPNetVideoProcessor.valid_kwargs.__annotations__)
        audio_names = set(inspect.signature(AVCPNetFeatureExtractor.__init__).parameters) - {"self", "kwargs"}
        for key, value in overrides.items():
            if key in video_names:
                video_kwargs[key] = value
            elif key in audio_names:
                audio_kwargs[key] = value
            else:
                raise TypeError(f"from_model_config: unknown override {key!r}")
        return cls(AVCPNetVideoProcessor(**video_kwargs), AVCPNetFeatureExtractor(**audio_kwargs))

    def __call__(self, videos=None, audio=None, sampling_rate: Optional[int] = None, skip_bad_files: bool = False,
                 return_tensors: Optional[str] = "pt", mfcc=None, **video_kwargs) -> BatchFeature:
        """See the class docstring. `video_kwargs` go to the video processor (`training`, `generator`,
        `do_sample_frames`, `num_frames`, `do_resize`, ...); other names raise `TypeError`."""
        valid = set(self.video_processor.valid_kwargs.__annotations__)
        unknown = sorted(set(video_kwargs) - valid)
        if unknown:
            raise TypeError(f"unexpected arguments {unknown} for {type(self).__name__}")
        if videos is None and audio is None:
            raise ValueError("pass videos, audio or both")
        video_list = make_video_list(videos) if videos is not None else None
        audio_list = self._audio_list(audio, len(video_list) if video_list is not None else None)
        count = len(video_list) if video_list is not None else len(audio_list)
        mfcc_list = self._audio_list(mfcc, count)

        # The bad-file policy, in one place: a sample whose media cannot be decoded raises, or is left out.
        clips, features, kept, errors = [], [], [], {}
        for position in range(count):
            video = video_list[position] if video_list is not None else None
            try:
                clip, audio_features = self._process_sample(video, audio_list[position], sampling_rate, video_kwargs,
                                                            mfcc_list[position])
            except ValueError as error:  # a MediaError, from this file's copy of the media layer or another's
                if not is_media_error(error):
                    raise
                if not skip_bad_files:
                    if count == 1:
                        raise
                    raise type(error)(error.name, f"{error.problem} (input {position} of {count}; "
                                      f"{SKIP_HINT})") from error
                errors[position] = str(error)
                continue
            if clip is not None:
                clips.append(clip)
            features.append(audio_features)
            kept.append(position)

        data = {}
        if video_list is not None:
            data["pixel_values_videos"] = _concatenated(clips) if clips else self._no_clips()
        if features:
            data.update({key: _concatenated([item[key] for item in features]) for key in features[0]})
        else:
            data.update(self.feature_extractor([], return_tensors="pt").data)
        batch = BatchFeature(data, tensor_type=return_tensors)
        batch.kept_indices = kept
        batch.errors = errors
        return batch

    @staticmethod
    def _audio_list(audio, count: Optional[int]) -> list:
        if audio is None:
            return [None] * (count or 0)
        if isinstance(audio, (list, tuple)):
            audio_list = list(audio)
        else:
            audio_list = [audio]
        if count is not None and len(audio_list) != count:
            raise ValueError(f"got {count} videos but {len(audio_list)} audio entries; pass one per video "
                             "(None to use the video's own audio track)")
        return audio_list

    def _process_sample(self, video, audio, sampling_rate: Optional[int], video_kwargs: dict, mfcc=None):
        """`pixel_values_videos` `(1, S, F, 3, H, W)` (None without a video) and the feature extractor's output for
        one sample. A media file is opened once: the pass that indexes its video packets also decodes its soundtrack
        (only the central part that the centre-cropped MFCC covers, with a second to spare, so that a 10-minute file
        does not cost ten times a 1-minute one), unless `mfcc` already holds its MFCC."""
        precomputed = mfcc is not None and np.asarray(mfcc).size > 0
        own_audio = video is not None and audio is None and _is_media_file(video) and not precomputed
        clip = None
        name = describe_source(video) if video is not None else "<audio>"
        if video is not None:
            # A media file is opened here, once, for its frames (read by the video processor) and its soundtrack;
            # frame folders and arrays go to the video processor as they are.
            reader = MediaReader(video, threads=self.video_processor.decode_threads,
                                 **self._soundtrack_options(own_audio)) if _is_media_file(video) else None
            with reader if reader is not None else contextlib.nullcontext():
                clip = self.video_processor(reader if reader is not None else video, return_tensors="pt",
                                            **video_kwargs)["pixel_values_videos"]
                if own_audio:
                    waveform, problem = reader.audio, reader.audio_problem
        if precomputed:
            return clip, self.feature_extractor.from_mfcc(mfcc, name)
        if not own_audio:
            waveform, waveform_rate, name, problem = self._separate_soundtrack(audio, sampling_rate, name)
        else:
            waveform_rate = self.feature_extractor.sampling_rate
        if waveform is None or np.asarray(waveform).size == 0:
            warnings.warn(f"{name}: {problem}; using zero audio features (audio_mask False)", MissingAudioWarning,
                          stacklevel=4)
            waveform = None
        return clip, self.feature_extractor([waveform], sampling_rate=waveform_rate, return_tensors="pt")

    def _soundtrack_options(self, decode_audio: bool = True) -> dict:
        """`MediaReader` arguments for decoding a soundtrack as the MFCC needs it (the feature extractor's rate,
        the central `needed_seconds` plus one)."""
        return {"audio_sample_rate": self.feature_extractor.sampling_rate if decode_audio else None,
                "audio_max_seconds": self.feature_extractor.needed_seconds + 1.0}

    def _separate_soundtrack(self, audio, sampling_rate: Optional[int], name: str):
        """`(waveform or None, its rate, name, problem)` of a sample's `audio` entry: a waveform array, a soundtrack
        file, or None (no soundtrack given)."""
        rate = self.feature_extractor.sampling_rate
        if audio is None:
            return None, rate, name, "no soundtrack given"
        if isinstance(audio, (np.ndarray, torch.Tensor)):
            return audio, sampling_rate or rate, name, "empty waveform"
        with MediaReader(audio, require_video=False, index_video=False, **self._soundtrack_options()) as soundtrack:
            return soundtrack.audio, rate, soundtrack.name, soundtrack.audio_problem

    def soundtrack_mfcc(self, video, audio=None) -> Optional[np.ndarray]:
        """The MFCC `(frames, num_mfcc)` float32 that a call on `video` (and its `audio` entry) computes from the
        soundtrack, decoded the same way; None when it has no usable soundtrack (the call then warns and gives
        `audio_mask` False). Pass it back as `mfcc` to skip decoding the audio again (the training media cache
        stores it as a column). Raises `MediaError` when the file cannot be read."""
        if audio is None and _is_media_file(video):
            with MediaReader(video, threads=1, **self._soundtrack_options()) as reader:
                waveform, rate = reader.audio, self.feature_extractor.sampling_rate
        else:
            waveform, rate, _, _ = self._separate_soundtrack(audio, None, describe_source(video))
        if waveform is None or np.asarray(waveform).size == 0:
            return None
        return self.feature_extractor.mfcc(waveform, rate).numpy()

    def _no_clips(self) -> torch.Tensor:
        """`pixel_values_videos` of a batch in which no video could be decoded: `(0, S, F, 3, H, W)`."""
        processor = self.video_processor
        return torch.zeros(0, processor.num_segments, processor.frames_per_segment, 3, processor.crop_size.height,
                           processor.crop_size.width)

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values_videos", "input_features", "audio_mask"]


def _concatenated(tensors: list) -> torch.Tensor:
    """`torch.cat`, without the copy for a single tensor (a training example: 19 MB of pixels)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _is_media_file(video: Any) -> bool:
    """True for inputs read with PyAV (files, bytes, file objects), False for frame folders, arrays and readers."""
    if isinstance(video, (str, os.PathLike)):
        return not os.path.isdir(video)
    return isinstance(video, (bytes, bytearray, memoryview, dict)) or hasattr(video, "read")


__all__ = ["AVCPNetProcessor", "MissingAudioWarning", "MediaError", "VideoDecodingError"]
