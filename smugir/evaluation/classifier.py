"""A model seen as a function of images on its grid, many images per onnxruntime call.

The metrics crop and resize images, which only makes sense on the (channels, height, width) grid;
the model may hold that grid as a flat vector, NHWC or NCHW. This class converts in both
directions and classifies in chunks: OptBox alone classifies 2,025 crops per input. A model
exported with a fixed batch of 1 gets a symbolic batch dim in the session built here, and the
session runs onnxruntime's graph optimisations; both are used only when they reproduce the plain
session's outputs on a probe (`smugir.model.batched_session`), otherwise images go one at a time.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from smugir.model import Model, batched_session, run_session
from smugir.units import InputLayout, input_layout
from smugir.verify import probabilities

CHUNK_ELEMENTS = 1 << 19  # input floats per call: 3 images of 3 x 224 x 224 (optimised EfficientNet-Lite0: 10 ms an image at 1 to 4 per call, 13 at 6, 18 at 32)


class ImageClassifier:
    """`classifier(images (B, C, H, W))` -> class probabilities (B, classes), read as `smugir.verify` reads them."""

    def __init__(self, model: Model, layout: InputLayout | None = None):
        self.model = model
        self.layout = layout or input_layout(model.input_shape)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.layout.channels, self.layout.height, self.layout.width)

    @cached_property
    def _session(self):
        return batched_session(self.model.proto, self.model.input_name, self.model.input_shape, optimize=True)

    @property
    def batched(self) -> bool:
        """Whether one onnxruntime call classifies several images."""
        return self._session[1]

    @property
    def chunk(self) -> int:
        """Images per onnxruntime call."""
        return max(1, CHUNK_ELEMENTS // int(np.prod(self.image_shape))) if self.batched else 1

    def to_image(self, x: np.ndarray) -> np.ndarray:
        """Raw model input (any shape of its size) -> (C, H, W) float64."""
        return self.layout.to_image(np.asarray(x, dtype=np.float64).reshape(-1))

    def to_input(self, image: np.ndarray) -> np.ndarray:
        """(C, H, W) or (H, W) -> raw model input of `model.input_shape`, float32."""
        return self.layout.from_image(np.asarray(image), self.model.input_shape).astype(np.float32)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images).reshape((-1, *self.image_shape))
        session, _ = self._session
        model = self.model
        rows = []
        for start in range(0, len(images), self.chunk):
            chunk = images[start : start + self.chunk]
            feed = np.concatenate([self.to_input(image) for image in chunk])
            out = np.asarray(run_session(session, [model.output_name], {model.input_name: feed})[0])
            rows.extend(probabilities(model, row) for row in out.reshape(len(chunk), -1))
        return np.stack(rows) if rows else np.zeros((0, 0))
