"""Shared fixtures: paths to the bundled real models and samples (see tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465])
CIFAR_STD = np.array([0.2471, 0.2435, 0.2616])


def mnist_samples() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(DATA / "mnist" / "mnist_test_samples.npz")
    return data["images"].astype(np.float32), data["labels"]


def cifar_samples() -> tuple[np.ndarray, np.ndarray]:
    """NHWC images in [0, 1]."""
    data = np.load(DATA / "cifar" / "cifar10_test_samples.npz")
    return data["images_nhwc"].astype(np.float32), data["labels"]


def resnet_inputs(images_nhwc: np.ndarray) -> np.ndarray:
    """resnet_2b expects (x - mean) / std in NCHW, applied outside the model."""
    return ((images_nhwc - CIFAR_MEAN) / CIFAR_STD).transpose(0, 3, 1, 2).astype(np.float32)


REAL_MODELS = {
    "mnist-net_256x2": (DATA / "mnist" / "mnist-net_256x2.onnx", lambda: mnist_samples()[0]),
    "mnist_relu_9_200": (DATA / "mnist" / "mnist_relu_9_200.onnx", lambda: mnist_samples()[0]),
    "cifar10_small": (DATA / "cifar" / "cifar10_small.onnx", lambda: cifar_samples()[0]),
    "resnet_2b": (DATA / "cifar" / "resnet_2b.onnx", lambda: resnet_inputs(cifar_samples()[0])),
}


@pytest.fixture(params=sorted(REAL_MODELS))
def real_model(request):
    """(name, path, samples) for every bundled real model."""
    path, samples = REAL_MODELS[request.param]
    return request.param, path, samples()
