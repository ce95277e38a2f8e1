"""Evaluation: the metrics on hand-made cases with known answers, the PAIR baselines on the real
models, SMUG as a PAIR method, and the model-randomisation sanity checks."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from conftest import CIFAR_MEAN, CIFAR_STD, DATA, cifar_samples, mnist_samples, resnet_inputs
from onnx import numpy_helper

from smugir import weights
from smugir.attribution import provider_for
from smugir.errors import InputError, UnsupportedModelError
from smugir.evaluation.baselines import METHODS, SmugSaliency, _gaussian_blur, last_conv_tensor, saliency_map, setting_for
from smugir.evaluation.classifier import ImageClassifier
from smugir.evaluation.comparison import OPTBOX, Record, compare, summarize
from smugir.evaluation.metrics import (
    Box,
    crop_and_resize,
    grid_boxes,
    mask_agreement,
    optbox,
    saliency_metric,
    sparsity,
    text_saliency_metric,
    thresholds,
    win_rates,
)
from smugir.evaluation.randomize import parameter_layers, steps
from smugir.evaluation.samples import black_and_white, load_samples
from smugir.evaluation.sanity import sanity_check
from smugir.evaluation.similarity import similarity
from smugir.explain import explain
from smugir.model import load_model

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"
CIFAR = DATA / "cifar" / "cifar10_small.onnx"
RESNET = DATA / "cifar" / "resnet_2b.onnx"


# --- the metrics, with a stub classifier that knows which box it was shown ---------------------------

SIZE = 20


def coordinate_image() -> np.ndarray:
    """(3, SIZE, SIZE): channel 0 holds each pixel's row, channel 1 its column, channel 2 zeros.
    A crop resized back (bilinear, edge mode) keeps its first and last row and column exactly, so
    the classifier below can read which box it was given."""
    rows, cols = np.indices((SIZE, SIZE)).astype(np.float64)
    return np.stack([rows, cols, np.zeros_like(rows)])


class BoxClassifier:
    """Probability of class 1 = IoU(crop's box, target)^2: the target box is the unique best LSC
    (a box inside it loses probability faster than area, a box around it gains area)."""

    def __init__(self, target: Box):
        self.target = target
        self.seen: list[Box] = []

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        out = []
        for crop in crops:
            box = Box(int(round(crop[0].min())), int(round(crop[1].min())), int(round(crop[0].max())) + 1, int(round(crop[1].max())) + 1)
            self.seen.append(box)
            t = self.target
            inter = max(0, min(box.bottom, t.bottom) - max(box.top, t.top)) * max(0, min(box.right, t.right) - max(box.left, t.left))
            union = (box.bottom - box.top) * (box.right - box.left) + (t.bottom - t.top) * (t.right - t.left) - inter
            p = max((inter / union) ** 2, 1e-9)
            out.append([1 - p, p])
        return np.array(out)


def test_crops_resized_back_keep_their_box_and_the_whole_box_is_the_image():
    image = coordinate_image()
    box = Box(3, 5, 9, 17)
    crop = crop_and_resize(image, box)
    assert crop.shape == image.shape
    np.testing.assert_allclose([crop[0].min(), crop[0].max(), crop[1].min(), crop[1].max()], [3, 8, 5, 16], atol=1e-5)
    np.testing.assert_array_equal(crop_and_resize(image, Box(0, 0, SIZE, SIZE)), image)


def test_the_metric_finds_the_box_exactly_around_a_known_patch():
    target = Box(4, 6, 10, 14)  # 48 of 400 pixels: area 0.12, above the 0.05 floor
    saliency = np.zeros((SIZE, SIZE))
    saliency[target.top : target.bottom, target.left : target.right] = 2.0
    saliency[18, 1] = 0.5  # a decoy below the patch's values: the threshold 0 box holds it, a higher one does not
    classify = BoxClassifier(target)
    score = saliency_metric(classify, coordinate_image(), saliency, label=1)
    assert score.box == target and score.threshold == 0.5
    assert score.probability == pytest.approx(1.0)
    assert score.area == pytest.approx(0.12) and score.score == pytest.approx(math.log(0.12))
    assert Box(4, 1, 19, 14) in classify.seen  # the threshold-0 box was tried and lost


def test_all_zero_and_constant_maps_score_the_whole_image():
    target = Box(4, 6, 10, 14)
    whole = saliency_metric(BoxClassifier(target), coordinate_image(), np.ones((SIZE, SIZE)), label=1)
    zero = saliency_metric(BoxClassifier(target), coordinate_image(), np.zeros((SIZE, SIZE)), label=1)
    for score in (whole, zero):
        assert score.box == Box(0, 0, SIZE, SIZE) and score.area == 1.0 and score.evaluated == 1
        assert score.score == pytest.approx(-math.log(0.12**2))  # IoU of the whole image with the target
    assert zero.threshold is None and whole.threshold == 0.0


def test_the_area_floor_and_bad_maps():
    target = Box(9, 9, 11, 11)  # 4 pixels: area 0.01, scored as 0.05
    saliency = np.zeros((SIZE, SIZE))
    saliency[9:11, 9:11] = 1.0
    assert saliency_metric(BoxClassifier(target), coordinate_image(), saliency, 1).score == pytest.approx(math.log(0.05))
    with pytest.raises(InputError, match="NaN"):
        saliency_metric(BoxClassifier(target), coordinate_image(), np.full((SIZE, SIZE), np.nan), 1)
    with pytest.raises(InputError, match="needs an"):
        saliency_metric(BoxClassifier(target), coordinate_image(), np.zeros((SIZE, SIZE + 1)), 1)


def test_thresholds_are_zero_plus_the_values_thinned_to_about_the_limit():
    assert thresholds(np.array([3.0, 1.0, 1.0, 2.0]), None).tolist() == [0.0, 1.0, 2.0, 3.0]
    thinned = thresholds(np.arange(1000.0), 100)
    assert thinned[0] == 0.0 and 90 <= thinned.size <= 110


def test_optbox_finds_the_known_best_box():
    target = Box(4, 6, 12, 14)  # on the 10 x 10 grid of a 20 x 20 image (cells of 2 pixels)
    assert len(grid_boxes(SIZE, SIZE)) == 2025 and target in grid_boxes(SIZE, SIZE)
    best = optbox(BoxClassifier(target), coordinate_image(), label=1)
    assert best.box == target and best.score == pytest.approx(math.log(64 / 400)) and best.evaluated < 2025


class RandomClassifier:
    """A fixed random probability for every box it is shown (read off the crop's corners), so the
    pruned search can be checked against classifying every box."""

    def __init__(self, seed: int, low: float):
        self.rng = np.random.default_rng(seed)
        self.low = low
        self.table: dict[tuple, float] = {}
        self.shown = 0

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        self.shown += len(crops)
        p = []
        for crop in crops:
            key = tuple(np.round([crop[0, 0, 0], crop[0, -1, 0], crop[1, 0, 0], crop[1, 0, -1]], 6))
            p.append(self.table.setdefault(key, float(self.rng.uniform(self.low, 1.0))))
        p = np.array(p)
        return np.stack([1 - p, p], axis=1)


@pytest.mark.parametrize("seed, low", [(0, 0.0), (1, 0.5), (2, 0.9), (3, 0.99)])
def test_the_pruned_box_search_equals_classifying_every_box(seed, low):
    from smugir.evaluation import metrics

    image = coordinate_image()
    boxes = grid_boxes(SIZE, SIZE)
    classify = RandomClassifier(seed, low)
    found = optbox(classify, image, label=1)
    probabilities = classify(np.stack([crop_and_resize(image, box) for box in boxes]))[:, 1]
    scores = [metrics.lsc_score(box.area_fraction(SIZE, SIZE), p) for box, p in zip(boxes, probabilities)]
    best = int(np.argmin(scores))
    assert (found.box, found.score, found.probability) == (boxes[best], scores[best], probabilities[best])
    assert found.evaluated <= len(boxes)


def test_the_fast_resize_equals_scikit_image_to_float32_precision():
    from skimage.transform import resize

    image = np.random.default_rng(0).normal(size=(3, 37, 29))
    for box in (Box(0, 0, 2, 2), Box(3, 4, 20, 9), Box(10, 1, 37, 29), Box(0, 0, 37, 28)):
        crop = image[:, box.top : box.bottom, box.left : box.right].transpose(1, 2, 0)
        expected = resize(crop, (37, 29), order=1, mode="edge", anti_aliasing=False, preserve_range=True).transpose(2, 0, 1)
        crop = crop_and_resize(image, box)
        assert crop.dtype == np.float32  # what the classifier reads
        assert np.allclose(crop, expected, rtol=0, atol=8 * np.finfo(np.float32).eps * np.abs(image).max())


def test_sparsity_counts_pixels_with_a_value():
    saliency = np.zeros((4, 5))
    saliency[1, 2:4] = 0.3
    assert sparsity(saliency) == pytest.approx(2 / 20)


def test_win_rates_on_constructed_scores():
    scores = {"a": np.array([1.0, 2.0, 3.0, 0.0]), "b": np.array([2.0, 1.0, 3.0, 5.0]), "c": np.array([np.nan, 9.0, 9.0, 9.0])}
    rates = win_rates(scores, seed=1)
    assert rates["a"].rate == 0.75 and rates["b"].rate == 0.5 and rates["c"].rate == 0.0  # the tie on input 2 counts for both
    for rate in rates.values():
        assert 0.0 <= rate.low <= rate.rate <= rate.high <= 1.0
    assert rates["c"].low == rates["c"].high == 0.0
    assert win_rates({"a": np.zeros(50), "b": np.r_[np.ones(25), -np.ones(25)]})["a"].high < 0.75  # the interval narrows with data


def test_summary_ranks_map_methods_and_keeps_optbox_out_of_win_rates():
    records = [Record("m", str(s), 0, method, lsc, 0.5, 0.5, None, None if method == OPTBOX else 0.25, 1.0)
               for s, lscs in enumerate([(1.0, 2.0, -5.0), (3.0, 1.0, -5.0), (0.0, 1.0, -5.0)])
               for method, lsc in zip(("smug", "ig", OPTBOX), lscs)]
    rows = {row.method: row for row in summarize(records)}
    assert rows["smug"].win == pytest.approx(2 / 3) and rows["ig"].win == pytest.approx(1 / 3)
    assert rows[OPTBOX].win is None and rows[OPTBOX].sparsity is None and rows[OPTBOX].lsc_median == -5.0
    assert (rows["smug"].lsc_q1, rows["smug"].lsc_median, rows["smug"].lsc_q3) == (0.5, 1.0, 2.0)


def test_mask_agreement_on_constructed_masks():
    truth = np.array([1, 1, 0, 0])
    perfect = mask_agreement(np.array([0.9, 0.8, 0.1, 0.0]), truth)
    assert (perfect.auc, perfect.max_f1, perfect.min_mae) == (1.0, 1.0, 0.0)
    assert mask_agreement(np.array([0.0, 0.1, 0.8, 0.9]), truth).auc == 0.0
    assert mask_agreement(np.ones(4), truth).auc == 0.5
    # By hand: pairs (pos, neg) ordered right 3 of 4; top-3 gives F1 2*2/(3+2); top-1 or top-3 err on 1 of 4.
    mixed = mask_agreement(np.array([0.9, 0.2, 0.5, 0.1]), truth)
    assert mixed.auc == 0.75 and mixed.max_f1 == pytest.approx(0.8) and mixed.min_mae == 0.25
    with pytest.raises(InputError, match="both kept and dropped"):
        mask_agreement(np.ones(4), np.ones(4))


def test_text_variant_keeps_the_words_above_each_threshold():
    ids = np.array([5, 6, 7, 8, 0, 0])  # four words, then padding

    def classify(batch):  # probability 1 when word 7 is kept, 0.5 otherwise
        p = np.where((batch == 7).any(axis=1), 1.0, 0.5)
        return np.stack([1 - p, p], axis=1)

    score = text_saliency_metric(classify, ids, np.array([0.1, 0.2, 0.9, 0.3, 0.0, 0.0]), label=1)
    assert score.area == 0.25 and score.probability == 1.0 and score.score == pytest.approx(math.log(0.25))
    with pytest.raises(InputError, match="one score per position"):
        text_saliency_metric(classify, ids, np.zeros(3), 1)


# --- the baselines on the real models ------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar():
    images, labels = cifar_samples()
    return load_model(CIFAR), images, labels


@pytest.fixture(scope="module")
def mnist():
    images, labels = mnist_samples()
    return load_model(MNIST), images, labels


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("name", ["cifar", "mnist"])
def test_every_method_gives_a_finite_map_of_the_input_shape(request, name, method):
    model, images, labels = request.getfixturevalue(name)
    if name == "mnist" and method == "gradcam":
        with pytest.raises(UnsupportedModelError, match="Grad-CAM needs a convolution"):
            saliency_map(method, model, images[1], int(labels[1]))
        return
    result = saliency_map(method, model, images[1], int(labels[1]))
    assert result.shape == model.input_shape and np.all(np.isfinite(result)) and np.abs(result).sum() > 0


def test_blur_ig_blurs_as_scipy_does():
    """PAIR's Blur IG calls smugir's matrix blur, which gives scipy's zero-padded, 4-sigma
    truncated Gaussian filter on non-square images, at sigmas whose kernel is wider than the image."""
    import saliency.core.blur_ig as pair_blur_ig
    from scipy import ndimage

    image = np.random.default_rng(0).normal(size=(37, 29, 3))
    assert pair_blur_ig.gaussian_blur is _gaussian_blur and _gaussian_blur(image, 0) is image
    for sigma in (0.1, 0.7, 2.5, 9.0, 40.0):
        expected = ndimage.gaussian_filter(image, sigma=[sigma, sigma, 0], mode="constant")
        np.testing.assert_allclose(pair_blur_ig.gaussian_blur(image, sigma), expected, rtol=0, atol=1e-13)


def test_vanilla_gradients_match_finite_differences(cifar):
    model, images, labels = cifar
    x, label = images[0].astype(np.float64), int(labels[0])
    gradient = saliency_map("gradient", model, x, label).reshape(-1)

    def logit(values):
        return float(model.run(values.reshape(model.input_shape).astype(np.float32))[0].reshape(-1)[label])

    rng = np.random.default_rng(0)
    for index in rng.choice(x.size, 25, replace=False):
        step = np.zeros(x.size)
        step[index] = 1e-2
        numeric = (logit(x.reshape(-1) + step) - logit(x.reshape(-1) - step)) / 2e-2
        assert numeric == pytest.approx(gradient[index], abs=2e-3 * np.abs(gradient).max())


def test_pair_gradients_come_from_smugirs_gradient_provider(cifar):
    model, images, labels = cifar
    provider = provider_for(model, model.input_name, "logit")
    _, expected = provider(images[0][None], int(labels[0]))
    np.testing.assert_allclose(saliency_map("gradient", model, images[0], int(labels[0])), expected.reshape(model.input_shape))


def test_gradcam_reads_the_last_convolution_block():
    assert last_conv_tensor(load_model(CIFAR)) == "sequential/conv2d_1/Relu:0"
    resnet = load_model(RESNET)
    relu = resnet.nodes_by_output[last_conv_tensor(resnet)]
    assert relu.op_type == "Relu" and resnet.nodes_by_output[relu.input[0]].op_type == "Add"  # after the residual sum


def test_smug_is_a_pair_method_equal_to_explain(mnist):
    model, images, labels = mnist
    label = int(labels[2])
    image_hwc = images[2][..., None].astype(np.float64)
    smug = SmugSaliency(model, top_k=16, window=2)
    mask = smug.GetMask(image_hwc, None, {"class": label})
    expected = explain(model, images[2], label=label, top_k=16, window=2)
    assert mask.shape == (28, 28, 1)
    np.testing.assert_array_equal(mask.reshape(-1), expected.saliency.reshape(-1))
    assert sparsity(mask[..., 0]) == pytest.approx(expected.mask.mean())  # the map is non-zero exactly where SMUG keeps


def test_baselines_are_in_model_input_units_for_normalised_models():
    low, high = black_and_white(tuple(CIFAR_MEAN), tuple(CIFAR_STD), 3)
    np.testing.assert_allclose(low, -CIFAR_MEAN / CIFAR_STD)
    np.testing.assert_allclose(high, (1 - CIFAR_MEAN) / CIFAR_STD)
    resnet = load_model(RESNET)
    setting = setting_for(resnet, low=low, high=high)
    black = setting.layout.from_image(setting.constant(setting.low).transpose(2, 0, 1), resnet.input_shape)
    np.testing.assert_allclose(black, resnet_inputs(np.zeros((1, 32, 32, 3), np.float32)), rtol=1e-6)


def test_pixel_archives_are_read_like_image_files():
    resnet = load_model(RESNET)
    setting = setting_for(resnet)
    samples = load_samples(f"{DATA / 'cifar' / 'cifar10_test_samples.npz'}:images_nhwc", resnet, setting.layout, pixels=True,
                           scale=1.0, mean=tuple(CIFAR_MEAN), std=tuple(CIFAR_STD), limit=4)
    images, labels = cifar_samples()
    np.testing.assert_allclose(samples.inputs, resnet_inputs(images[:4])[:, None].reshape(samples.inputs.shape), rtol=1e-5, atol=1e-6)
    assert samples.ids == ["00", "01", "02", "03"] and samples.labels.tolist() == labels[:4].tolist()


def test_unknown_methods_are_refused_by_name(mnist):
    model, images, labels = mnist
    with pytest.raises(InputError, match="unknown saliency method.*lime.*accepted: smug"):
        saliency_map("lime", model, images[0], 0)


def test_compare_scores_only_correct_inputs_and_reports_unavailable_methods(mnist):
    model, images, labels = mnist
    wrong = labels[:3].copy()
    wrong[1] = (wrong[1] + 1) % 10
    result = compare(model, images[:3], wrong, ["ig", "gradcam", OPTBOX], only_correct=True)
    assert result.skipped == ["1"] and "gradcam" in result.unavailable
    assert sorted((r.sample, r.method) for r in result.records) == [("0", "ig"), ("0", OPTBOX), ("2", "ig"), ("2", OPTBOX)]
    classify = ImageClassifier(model)
    for record in result.records:  # the recorded probability is the model's on the recorded box
        crop = crop_and_resize(result.images[record.sample], Box(*record.box))
        assert classify(crop[None])[0, record.label] == pytest.approx(record.probability)
        assert record.lsc == pytest.approx(math.log(max(0.05, record.area)) - math.log(record.probability))


# --- sanity checks -------------------------------------------------------------------------------------

def _initializers(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: weights.array(t) for t in proto.graph.initializer}


@pytest.mark.parametrize("path", [CIFAR, RESNET, MNIST], ids=lambda p: p.stem)
def test_randomisation_changes_exactly_the_intended_layers(path):
    model = load_model(path)
    layers = parameter_layers(model.proto)
    original = _initializers(model.proto)
    linear = [n.name or n.output[0] for n in model.proto.graph.node if n.op_type in ("Gemm", "MatMul", "Conv")]
    assert [layer.node for layer in layers] == linear[::-1]  # from the logits down
    for mode in ("cascading", "independent"):
        models = list(steps(model, mode))
        assert len(models) == len(layers) + 1 and models[0].model is model
        for step in models[1:]:
            chosen = layers[: step.index] if mode == "cascading" else [layers[step.index - 1]]
            intended = {t for layer in chosen for t in (layer.weight, layer.bias) if t}
            after = _initializers(step.model.proto)
            changed = {name for name, value in original.items() if not np.array_equal(value, after[name])}
            assert changed == intended, (mode, step.index)
            assert step.layers == tuple(layer.node for layer in chosen)
            for layer in chosen:
                if layer.bias:
                    assert not after[layer.bias].any()  # biases re-initialised to 0
    assert _initializers(model.proto).keys() == original.keys()  # the original is untouched
    assert all(np.array_equal(v, original[k]) for k, v in _initializers(model.proto).items())


def test_a_few_steps_spread_over_the_depth_and_end_with_every_layer():
    model = load_model(RESNET)
    every = list(steps(model, "cascading"))
    few = list(steps(model, "cascading", max_steps=2))
    assert [s.index for s in few] == [0, round((len(every) - 1 + 1) / 2), len(every) - 1]
    assert few[-1].layers == every[-1].layers
    assert [s.layers for s in steps(model, "independent", max_steps=1)][-1] == (every[-1].layers[-1],)
    with pytest.raises(InputError, match=">= 1"):
        list(steps(model, "cascading", max_steps=0))


def test_cascading_keeps_the_random_weights_of_layers_already_randomised():
    model = load_model(CIFAR)
    first, second = list(steps(model, "cascading"))[1:3]
    name = parameter_layers(model.proto)[0].weight
    np.testing.assert_array_equal(_initializers(first.model.proto)[name], _initializers(second.model.proto)[name])


def test_the_noise_test_adds_weights_noise_of_the_given_stdev():
    model = load_model(CIFAR)
    original = _initializers(model.proto)
    layers = parameter_layers(model.proto)
    last = list(steps(model, "noise:0.2"))[-1]
    after = _initializers(last.model.proto)
    for layer in layers:
        difference = after[layer.weight].astype(np.float64) - original[layer.weight]
        if difference.size >= 1000:
            assert difference.std() == pytest.approx(0.2, rel=0.1) and abs(difference.mean()) < 0.02
        if layer.bias:
            np.testing.assert_array_equal(after[layer.bias], original[layer.bias])
    with pytest.raises(InputError, match="noise:SIGMA"):
        list(steps(model, "noise:-1"))


def test_a_model_blind_method_passes_randomisation_unchanged_and_gradients_do_not(cifar):
    model, images, labels = cifar
    result = sanity_check(model, images[:2], labels[:2], ["gradient", "edges"], ["cascading"])
    randomised = [r for r in result.records if r.step > 0]
    edges = [r for r in randomised if r.method == "edges"]
    gradients = [r for r in randomised if r.method == "gradient"]
    assert len(edges) == len(gradients) == 2 * len(parameter_layers(model.proto))
    assert all(r.spearman_absolute == pytest.approx(1.0) and r.ssim == pytest.approx(1.0) for r in edges)
    assert np.mean([r.spearman_absolute for r in gradients]) < 0.85
    assert np.mean([abs(r.spearman_signed) for r in gradients]) < 0.4
    assert all(r.spearman_absolute == pytest.approx(1.0) for r in result.records if r.step == 0)


def test_similarity_of_maps():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 16, 16))
    same = similarity(a, a)
    assert (same.spearman_absolute, same.spearman_signed, same.ssim) == (pytest.approx(1.0),) * 3
    assert same.hog == pytest.approx(1.0)
    assert similarity(a, -a).spearman_signed == pytest.approx(-1.0)
    assert math.isnan(similarity(a, np.ones_like(a)).spearman_absolute)  # a constant map has no ranking
    with pytest.raises(InputError, match="different shapes"):
        similarity(a, a[:2])


# --- shared work between methods on one input ----------------------------------------------------------

def test_ig_and_xrai_share_their_black_ig_gradients_and_give_the_uncached_maps(cifar):
    from smugir.evaluation.baselines import GradientCache

    model, images, labels = cifar
    setting = setting_for(model)
    cache = GradientCache()
    shared = {m: saliency_map(m, model, images[0], int(labels[0]), setting, cache) for m in ("ig", "xrai")}
    assert cache.hits >= 1  # XRAI's IG from black asked for IG's 64 points again
    for method, values in shared.items():
        assert np.array_equal(values, saliency_map(method, model, images[0], int(labels[0]), setting))


def test_the_smug_variants_pay_for_first_layer_ig_once(mnist, monkeypatch):
    import smugir.attribution as attribution

    model, images, labels = mnist
    runs = []
    real = attribution.integrated_gradients
    monkeypatch.setattr(attribution, "integrated_gradients", lambda *a, **k: runs.append(1) or real(*a, **k))
    monkeypatch.setattr(attribution, "_RECENT_IG", type(attribution._RECENT_IG)())  # nothing kept from other tests
    setting = setting_for(model, smug={"top_k": 8})
    maps = [saliency_map(m, model, images[1], int(labels[1]), setting) for m in ("smug", "smug_base", "smug_default")]
    assert len(runs) == 1 and all(np.isfinite(m).all() for m in maps)


def test_a_classifier_for_a_fixed_batch_of_one_batches_and_equals_one_at_a_time():
    model = load_model(RESNET)
    assert not model.batch_dynamic
    classify = ImageClassifier(model)
    images = np.random.default_rng(0).normal(size=(9, 3, 32, 32))
    together = classify(images)
    one_by_one = np.stack([np.exp(z - z.max()) / np.exp(z - z.max()).sum()
                           for z in (model.run(classify.to_input(im))[0].reshape(-1).astype(np.float64) for im in images)])
    assert classify.batched and classify.chunk > 1
    assert np.allclose(together, one_by_one, rtol=1e-5, atol=1e-6)


def test_finite_differences_hold_a_few_perturbed_copies_at_a_time_and_give_the_same_gradient():
    from smugir.gradients import FiniteDifferences
    from smugir.model import with_batch_of_one

    model = load_model(RESNET)
    x = np.random.default_rng(1).normal(size=(1, 3, 32, 32))
    whole = FiniteDifferences(with_batch_of_one(model.proto), "logit")
    few = FiniteDifferences(with_batch_of_one(model.proto), "logit", max_batch_elements=4 * 3072)
    assert np.allclose(whole(x, 3)[1], few(x, 3)[1], rtol=1e-6, atol=1e-9)


def test_finite_differences_over_a_photo_are_refused_by_name(tmp_path):
    from onnx import TensorProto, helper

    from smugir.attribution import provider_for

    nodes = [helper.make_node("Erf", ["x"], ["e"]), helper.make_node("GlobalAveragePool", ["e"], ["p"]),
             helper.make_node("Flatten", ["p"], ["y"])]  # Erf has no gradient rule
    graph = helper.make_graph(nodes, "photo", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "erf.onnx")
    model = load_model(tmp_path / "erf.onnx")
    with pytest.raises(UnsupportedModelError, match="finite differences over the 150528 elements"):
        provider_for(model, model.input_name, "logit")


class _FailingSession:
    """Stands for an onnxruntime session whose run fails (its pybind error types are not importable)."""

    def run(self, names, feed):
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : out of memory\nstack ...")


def test_classifier_run_failures_are_named_errors(monkeypatch):
    classify = ImageClassifier(load_model(MNIST))
    monkeypatch.setitem(classify.__dict__, "_session", (_FailingSession(), True))
    with pytest.raises(UnsupportedModelError, match="failed running the model: .*out of memory$"):
        classify(np.zeros((2, *classify.image_shape)))


def test_path_steps_reach_the_path_methods_and_are_checked():
    model = load_model(MNIST)
    x = mnist_samples()[0][0]
    with pytest.raises(InputError, match="path steps must be in"):
        setting_for(model, path_steps=1)
    few, many = (saliency_map("ig", model, x, 3, setting_for(model, path_steps=steps)) for steps in (2, 64))
    assert not np.allclose(few, many)  # a Riemann sum of 2 steps is not one of 64
