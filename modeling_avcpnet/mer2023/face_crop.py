"""Face-crop stage of the MER 2023 visual features (the paper crops and aligns faces with OpenFace before the
frame-level backbone), as a pluggable, offline step.

    frames (T, H, W, 3) uint8 -> detector(frame) -> box -> square crop with a margin -> (T, size, size, 3) uint8

`FaceCropper(detector)` takes any callable `detector(frame) -> (x0, y0, x1, y1) | None` in pixel coordinates of
the `(H, W, 3)` uint8 RGB frame; frames where it finds nothing reuse the clip's last box (or the first one found,
for leading frames), and a clip where it finds nothing at all falls back to `center_face_box`. The default detector
is `center_face_box`: the central square of side `min(H, W) * 0.6` (talking-head clips such as MER 2023's keep the
face near the centre), which needs no weights and is deterministic.

To plug a real detector (any that runs offline with weights you have), wrap it, e.g. OpenCV's Haar cascade, whose
weights ship inside `opencv-python` (not a dependency of this package):

    import cv2
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    def haar(frame):
        faces = cascade.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 1.1, 5)
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])  # the largest face
        return x, y, x + w, y + h
    extractor = MER2023DeepFeatureExtractor(..., face_cropper=FaceCropper(haar))

Not reproducible offline (documented choice): OpenFace's detector (MTCNN-based in OpenFace 2) and its landmark
alignment (a similarity transform onto a canonical face, 112x112 by default) need OpenFace and its downloaded
models; this stage crops (no alignment) and the crop size is `size` (default 224, a ViT/ResNet input).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Box = Sequence[float]  # (x0, y0, x1, y1), pixels, x1/y1 exclusive
FaceDetector = Callable[[np.ndarray], Optional[Box]]


def center_face_box(frame: np.ndarray, fraction: float = 0.6) -> Box:
    """The central square of side `min(H, W) * fraction` of an `(H, W, 3)` frame: the default 'detector'."""
    height, width = frame.shape[:2]
    side = min(height, width) * fraction
    x0, y0 = (width - side) / 2, (height - side) / 2
    return x0, y0, x0 + side, y0 + side


class FaceCropper:
    r"""
    Crops the face of every frame of a clip: `(T, H, W, 3)` uint8 RGB -> `(T, size, size, 3)` uint8.

    Args:
        detector (`Callable[[np.ndarray], box | None]`, *optional*): returns the face box `(x0, y0, x1, y1)` of an
            `(H, W, 3)` uint8 frame, or None; defaults to `center_face_box`.
        size (`int`, defaults to 224): side of the output crops.
        margin (`float`, defaults to 0.2): the box is grown by this fraction of its side on each side, made square
            (around its centre), and clipped to the frame (pixels outside are zeros).
    """

    def __init__(self, detector: FaceDetector | None = None, size: int = 224, margin: float = 0.2):
        if size < 1 or margin < 0:
            raise ValueError(f"FaceCropper: size must be positive and margin non-negative, got {size}, {margin}")
        self.detector = detector if detector is not None else center_face_box
        self.size = size
        self.margin = margin

    @property
    def settings(self) -> dict:
        """What determines the output (for cache fingerprints): the detector's name, size and margin."""
        name = getattr(self.detector, "__qualname__", type(self.detector).__qualname__)
        return {"detector": f"{getattr(self.detector, '__module__', '')}.{name}", "size": self.size,
                "margin": self.margin}

    def boxes(self, frames: np.ndarray) -> list[Box]:
        """The box used for each frame (gaps filled from the neighbours found, see the module docstring)."""
        found = [self.detector(frame) for frame in frames]
        known = [box for box in found if box is not None]
        if not known:
            return [center_face_box(frame) for frame in frames]
        boxes, last = [], known[0]
        for box in found:
            last = box if box is not None else last
            boxes.append(last)
        return boxes

    def _square(self, box: Box) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = (float(v) for v in box)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"FaceCropper: the detector returned an empty box {tuple(box)}")
        side = max(x1 - x0, y1 - y0) * (1 + 2 * self.margin)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = round(cx - side / 2), round(cy - side / 2)
        return left, top, left + round(side), top + round(side)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"FaceCropper: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        height, width = frames.shape[1:3]
        crops = []
        for frame, box in zip(frames, self.boxes(frames)):
            left, top, right, bottom = self._square(box)
            crop = np.zeros((bottom - top, right - left, 3), dtype=np.uint8)  # zeros where the square leaves the frame
            sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
            if sx1 > sx0 and sy1 > sy0:
                crop[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = frame[sy0:sy1, sx0:sx1]
            pixels = torch.from_numpy(crop).permute(2, 0, 1)[None].float()
            resized = F.interpolate(pixels, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                    antialias=True)
            crops.append(resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())
        return np.stack(crops)


__all__ = ["FaceCropper", "FaceDetector", "center_face_box"]
