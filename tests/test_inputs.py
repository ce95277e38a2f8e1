"""Reading inputs (images, .npy, .npz entries), baselines, and all-or-nothing output files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, cifar_samples, mnist_samples
from PIL import Image

from smugir.baseline import make_baseline
from smugir.errors import InputError, OutputError
from smugir.exporters.files import check_folder, write_atomically, write_text
from smugir.inputs import load_input, load_segments
from smugir.units import input_layout

MNIST_SHAPE = (1, 784, 1)
MNIST_LAYOUT = input_layout(MNIST_SHAPE)


def test_npz_entry_and_npy(tmp_path):
    images, _ = mnist_samples()
    x = load_input(f"{DATA}/mnist/mnist_test_samples.npz:images[3]", MNIST_SHAPE, MNIST_LAYOUT)
    np.testing.assert_array_equal(x.reshape(28, 28), images[3])
    np.save(tmp_path / "x.npy", images[5])
    np.testing.assert_array_equal(load_input(str(tmp_path / "x.npy"), MNIST_SHAPE, MNIST_LAYOUT).reshape(28, 28), images[5])


def test_png_round_trip_with_normalisation(tmp_path):
    images, _ = cifar_samples()
    pixels = np.round(images[0] * 255).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(tmp_path / "cat.png")
    mean, std = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
    layout = input_layout((1, 3, 32, 32))
    x = load_input(str(tmp_path / "cat.png"), (1, 3, 32, 32), layout, mean=mean, std=std)
    expected = ((pixels / 255.0 - mean) / std).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(x, expected, rtol=1e-5)
    nhwc = load_input(str(tmp_path / "cat.png"), (1, 32, 32, 3), input_layout((1, 32, 32, 3)))
    np.testing.assert_allclose(nhwc[0], pixels / 255.0, rtol=1e-6)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing.npy", "does not exist"),
        ("{data}/mnist/mnist_test_samples.npz:nope[0]", "no array 'nope'"),
        ("{data}/mnist/mnist_test_samples.npz:images[99]", "out of range"),
        ("{data}/cifar/cifar10_test_samples.npz:images_nhwc[0]", "model input is"),
        ("{data}/README.md", "unknown type"),
    ],
)
def test_bad_inputs(spec, message):
    with pytest.raises(InputError, match=message):
        load_input(spec.format(data=DATA), MNIST_SHAPE, MNIST_LAYOUT)


def test_nan_input(tmp_path):
    x = np.zeros((28, 28), np.float32)
    x[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(InputError, match="NaN"):
        load_input(str(tmp_path / "nan.npy"), MNIST_SHAPE, MNIST_LAYOUT)


def test_wrong_image_size(tmp_path):
    Image.new("L", (20, 20)).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="20x20"):
        load_input(str(tmp_path / "small.png"), MNIST_SHAPE, MNIST_LAYOUT)


def test_baselines():
    images, _ = cifar_samples()
    layout = input_layout((1, 32, 32, 3))
    x = images[:1]
    assert not make_baseline("zero", x, layout).any()
    assert np.all(make_baseline("0.5", x, layout) == 0.5)
    mean = make_baseline("mean", x, layout)
    np.testing.assert_allclose(mean[0, 0, 0], x[0].reshape(-1, 3).mean(axis=0), rtol=1e-5)
    blurred = make_baseline("blur:2", x, layout)
    assert blurred.shape == x.shape and blurred.std() < x.std()
    with pytest.raises(InputError, match="unknown baseline"):
        make_baseline("noise", x, layout)
    with pytest.raises(InputError, match="sigma"):
        make_baseline("blur:0", x, layout)


def test_segments(tmp_path):
    images, _ = cifar_samples()
    layout = input_layout((1, 32, 32, 3))
    labels = load_segments("slic:20", images[:1], layout)
    assert labels.shape == (32, 32) and 5 <= len(np.unique(labels)) <= 40
    with pytest.raises(InputError, match="slic:N"):
        load_segments("slic:many", images[:1], layout)
    with pytest.raises(InputError, match=".npy label map"):
        load_segments(str(tmp_path / "none.npy"), images[:1], layout)


def test_atomic_writes(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "one")
    with pytest.raises(OutputError, match="already exists"):
        write_text(target, "two")
    write_text(target, "two", force=True)
    assert target.read_text() == "two"

    def fail(stream):
        stream.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(tmp_path / "b.txt", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with pytest.raises(OutputError, match="does not exist"):
        write_text(tmp_path / "missing" / "c.txt", "x")
    with pytest.raises(OutputError, match="does not exist"):
        check_folder(tmp_path / "missing" / "deeper", ["report.json"])
