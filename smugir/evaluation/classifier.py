"""A model seen as a function of images on its grid, many images per onnxruntime call.

The metrics crop and resize images, which only makes sense on the (channels, height, width) grid;
the model may hold that grid as a flat vector, NHWC or NCHW. This class converts in both
directions and batches whenever the model's leading dim is symbolic.
"""

from __future__ import annotations

import numpy as np

from smugir.model import Model
from smugir.units import InputLayout, input_layout
from smugir.verify import probabilities

CHUNK = 256  # images per onnxruntime call when the batch dim is dynamic


class ImageClassifier:
    """`classifier(images (B, C, H, W))` -> class probabilities (B, classes), read as `smugir.verify` reads them."""

    def __init__(self, model: Model, layout: InputLayout | None = None):
        self.model = model
        self.layout = layout or input_layout(model.input_shape)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.layout.channels, self.layout.height, self.layout.width)

    def to_image(self, x: np.ndarray) -> np.ndarray:
        """Raw model input (any shape of its size) -> (C, H, W) float64."""
        return self.layout.to_image(np.asarray(x, dtype=np.float64).reshape(-1))

    def to_input(self, image: np.ndarray) -> np.ndarray:
        """(C, H, W) or (H, W) -> raw model input of `model.input_shape`, float32."""
        return self.layout.from_image(np.asarray(image), self.model.input_shape).astype(np.float32)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images).reshape((-1, *self.image_shape))
        raw = [self.to_input(image) for image in images]
        model = self.model
        if model.batch_dynamic:  # several samples along the symbolic leading dim
            feeds = [np.concatenate(raw[start : start + CHUNK]) for start in range(0, len(raw), CHUNK)]
            counts = [len(raw[start : start + CHUNK]) for start in range(0, len(raw), CHUNK)]
        else:
            feeds, counts = raw, [1] * len(raw)
        session = model.session()
        rows = [np.asarray(session.run([model.output_name], {model.input_name: feed})[0]).reshape(count, -1)
                for feed, count in zip(feeds, counts)]
        return np.stack([probabilities(model, row) for rows_of in rows for row in rows_of]) if rows else np.zeros((0, 0))
