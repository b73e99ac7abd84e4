"""Processor for AV-CPNet: one call turns video files (and optional separate soundtracks) into model inputs.

`processor(videos=paths)` returns a `BatchFeature` with `pixel_values_videos` `(B, S, F, 3, H, W)` float32,
`input_features` `(B, A, T, n_mfcc)` float32 and `audio_mask` `(B,)` bool, so that `model(**processor(...))` works.
A media file is opened once: the demuxing pass that indexes its video packets also decodes its audio track.
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any, Optional

import numpy as np
import torch

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .feature_extraction_avcpnet import AVCPNetFeatureExtractor
from .media_avcpnet import MediaError, MediaReader, VideoDecodingError
from .video_processing_avcpnet import AVCPNetVideoProcessor, make_video_list


class MissingAudioWarning(UserWarning):
    """A sample has no usable audio: its audio features are zeros and its `audio_mask` is False."""


class AVCPNetProcessor(ProcessorMixin):
    r"""
    Wraps an [`AVCPNetVideoProcessor`] and an [`AVCPNetFeatureExtractor`].

    Call with `videos` (one or a list: paths, bytes, file objects, frame folders `000001.jpg ...`, or decoded
    `(T, H, W, 3)` uint8 arrays) and optionally `audio` (one per video: a soundtrack file path / bytes / file object,
    a mono waveform array at `sampling_rate`, or `None` to use the video file's own audio track). Frame folders and
    arrays have no audio of their own. A sample without usable audio gets zero features, `audio_mask` False and one
    `MissingAudioWarning` naming the file (Python's warning filter shows it once per file).

    Other arguments: `training` (random sampling and augmentation, from `generator` or torch's global RNG),
    `generator` (`torch.Generator`), `skip_bad_files` (see below), `sampling_rate` (of waveform arrays passed as
    `audio`; defaults to the feature extractor's), `return_tensors` (`"pt"` or `"np"`).

    `skip_bad_files=False` (default): the first sample whose video or soundtrack cannot be decoded raises
    `VideoDecodingError` (a `ValueError` naming the file and the problem). `skip_bad_files=True`: such samples are
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

    def __call__(self, videos=None, audio=None, training: bool = False, return_tensors: Optional[str] = "pt",
                 skip_bad_files: bool = False, generator: Optional[torch.Generator] = None,
                 sampling_rate: Optional[int] = None, **kwargs) -> BatchFeature:
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)} for {type(self).__name__}")
        if videos is None and audio is None:
            raise ValueError("pass videos, audio or both")
        video_list = make_video_list(videos) if videos is not None else None
        audio_list = self._audio_list(audio, len(video_list) if video_list is not None else None)
        count = len(video_list) if video_list is not None else len(audio_list)

        clips, waveforms, kept, errors = [], [], [], {}
        for position in range(count):
            try:
                clip, waveform = self._load_sample(
                    video_list[position] if video_list is not None else None, audio_list[position], training,
                    generator, sampling_rate)
            except VideoDecodingError as error:
                if not skip_bad_files:
                    raise
                errors[position] = str(error)
                continue
            if clip is not None:
                clips.append(self.video_processor.transform_clip(clip, training=training, generator=generator))
            waveforms.append(waveform)
            kept.append(position)

        data = {}
        if video_list is not None:
            data.update(self.video_processor.pack(clips, kept, errors, return_tensors).data)
        data.update(self.feature_extractor(waveforms, return_tensors=return_tensors).data)
        batch = BatchFeature(data)
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

    def _load_sample(self, video, audio, training: bool, generator, sampling_rate: Optional[int]):
        """Frames `(S * F, H, W, 3)` uint8 (or None without a video) and a mono waveform at the feature
        extractor's rate (or None without audio) for one sample."""
        rate = self.feature_extractor.sampling_rate
        # Only the central part of a long soundtrack reaches the (centre-cropped) features: decode just that, with a
        # second to spare, so that a 10-minute file does not cost ten times a 1-minute one.
        max_seconds = self.feature_extractor.needed_seconds + 1.0
        own_audio = video is not None and audio is None and _is_media_file(video)
        clip = None
        if video is not None:
            clip = self.video_processor.decode_clip(video, training=training, generator=generator,
                                                    audio_sample_rate=rate if own_audio else None,
                                                    audio_max_seconds=max_seconds)
        if own_audio:
            waveform, problem, name = clip.audio, clip.audio_problem, clip.name
        elif audio is None:
            waveform, problem, name = None, "no soundtrack given", clip.name if clip else "<audio>"
        elif isinstance(audio, (np.ndarray, torch.Tensor)):
            waveform = np.asarray(audio, dtype=np.float32)
            if waveform.ndim == 2:
                waveform = waveform.mean(0)
            if sampling_rate and sampling_rate != rate:
                import torchaudio

                waveform = torchaudio.functional.resample(torch.from_numpy(waveform), sampling_rate, rate).numpy()
            problem = "empty waveform" if waveform.size == 0 else None
            waveform = waveform if waveform.size else None
            name = clip.name if clip else "<waveform>"
        else:
            with MediaReader(audio, require_video=False, audio_sample_rate=rate,
                             audio_max_seconds=max_seconds) as reader:
                waveform, problem, name = reader.audio, reader.audio_problem, reader.name
        if waveform is None:
            warnings.warn(f"{name}: {problem}; using zero audio features (audio_mask False)", MissingAudioWarning,
                          stacklevel=3)
        return (clip.frames if clip is not None else None), waveform

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values_videos", "input_features", "audio_mask"]


def _is_media_file(video: Any) -> bool:
    """True for inputs read with PyAV (files, bytes, file objects), False for frame folders and arrays."""
    if isinstance(video, (str, os.PathLike)):
        return not os.path.isdir(video)
    return isinstance(video, (bytes, bytearray, memoryview)) or hasattr(video, "read")


__all__ = ["AVCPNetProcessor", "MissingAudioWarning", "VideoDecodingError"]
