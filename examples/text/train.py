"""Train a small sentence-polarity CNN (Kim 2014, "CNN-rand") and export it to ONNX for smugir.

Run from the repository root with the training venv (see README.md):

    /tmp/trainenv/bin/python examples/text/train.py [--data DIR]

It writes, next to this file: polarity_cnn.onnx, vocab.txt, test_sentences.tsv, metrics.json.

Why each choice
---------------
* Data: Pang & Lee sentence polarity v1.0 ("MR"), 5331 positive + 5331 negative sentences, latin-1,
  already tokenised. It is small, real, balanced and the classic benchmark for this architecture.
* Tokeniser: exactly smugir's `Vocabulary.encode` -- `sentence.lower().split()[:LENGTH]`, the id is
  the vocabulary line number, unknown words -> 1, padding (id 0) at the END. Training with any other
  tokenisation would make the explanations describe inputs the model never saw.
* LENGTH = 56: the longest negative sentence has 56 words; a single positive one has 59 and is cut.
* Vocabulary: words of the TRAINING split only with frequency >= 2 (so <unk> is seen in training and
  test/validation words do not leak), sorted by frequency desc then alphabetically (deterministic).
* Split: one numpy permutation with seed 0; 10 % test (held out, only evaluated at the end, with
  onnxruntime on the exported file), 10 % validation (early stopping), 80 % training.
* Model: Embedding(V, 64, padding_idx=0) -> transpose -> ONE Conv1d(64, 300, k=5, pad=2) -> ReLU ->
  MaxPool1d(LENGTH) (max over time) -> flatten -> dropout 0.5 -> Linear(300, 2).
  Kim uses three convolutions of widths 3/4/5 (100 filters each); smugir's first-layer analysis wants a
  single linear layer after the embedding, so the three banks share one width-5 Conv and a fixed 0/1
  mask over the kernel taps makes filters 0-99 width-3 (taps 1..3), 100-199 width-4 (taps 0..3) and
  200-299 width-5 (all taps). The mask multiplies the weight in forward during training (so masked
  taps get zero gradient and stay irrelevant); before export it is baked into conv.weight so the
  ONNX Conv has a plain initializer as weight (no Mul computing it).
  padding_idx=0 keeps the padding embedding at exactly zero, so padding behaves like the Conv's own
  zero padding. Embedding dim 64 (not 300) keeps the file small (< 5 MB) with no loss on this data.
  MaxPool1d (not torch.max) so the export is an ONNX MaxPool, not ReduceMax/ArgMax.
  No softmax in the graph: smugir works on logits.
* Training: Adam lr 1e-3, weight decay 1e-4 (light regularisation on top of dropout), batch 50,
  at most 20 epochs, the weights of the epoch with the best validation accuracy are kept (early stop
  after 3 epochs without improvement). With 10 epochs validation accuracy was still rising (best at
  the last epoch, 0.753); 20 epochs with early stopping peak at epoch ~12 (validation 0.768), and
  weight decay 1e-4 vs 1e-5 was picked on validation accuracy (0.768 vs 0.767, i.e. a tie). torch/numpy seeded with 0 and 2 threads for reproducibility.
* Export: legacy TorchScript exporter (dynamo=False), opset 17, dynamic batch axis, constant folding;
  then the graph is checked (onnx.checker, only allowed op types, Gather/Conv tables are
  initializers) and onnxruntime's logits are compared with torch's on the test set (atol 1e-4).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared/data/text"

LENGTH = 56
EMBED_DIM = 64
FILTERS_PER_WIDTH = 100
WIDTHS = (3, 4, 5)
DROPOUT = 0.5
LR = 1e-3
WEIGHT_DECAY = 1e-4
BATCH = 50
MAX_EPOCHS = 20
PATIENCE = 3
SEED = 0
PAD, UNK = "<pad>", "<unk>"
ALLOWED_OPS = {"Gather", "Transpose", "Conv", "Relu", "MaxPool", "Flatten", "Reshape", "Gemm", "MatMul", "Add",
               "Identity", "Cast", "Squeeze", "Unsqueeze"}


# ---------------------------------------------------------------- data

def read_sentences(path: Path) -> list[str]:
    """One sentence per line, latin-1; lowercased and whitespace-normalised (same tokens as .split())."""
    lines = path.read_bytes().decode("latin-1").split("\n")
    return [" ".join(line.lower().split()) for line in lines if line.strip()]


def split_data(data_dir: Path):
    pos = read_sentences(data_dir / "rt-polarity.pos")
    neg = read_sentences(data_dir / "rt-polarity.neg")
    sentences = pos + neg
    labels = np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)
    order = np.random.default_rng(SEED).permutation(len(sentences))
    n_test = n_val = len(sentences) // 10
    parts = {"test": order[:n_test], "validation": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {name: ([sentences[i] for i in idx], labels[idx]) for name, idx in parts.items()}


def build_vocab(train_sentences: list[str]) -> list[str]:
    counts = Counter(w for s in train_sentences for w in s.lower().split())
    words = sorted((w for w, c in counts.items() if c >= 2 and w not in (PAD, UNK)), key=lambda w: (-counts[w], w))
    return [PAD, UNK, *words]


def encode(sentences: list[str], ids: dict[str, int]) -> np.ndarray:
    """Exactly smugir.text.Vocabulary.encode: lower, split, cut to LENGTH, unknown -> 1, pad 0 at the end."""
    out = np.zeros((len(sentences), LENGTH), dtype=np.int64)
    for row, sentence in enumerate(sentences):
        words = sentence.lower().split()[:LENGTH]
        out[row, : len(words)] = [ids.get(w, 1) for w in words]
    return out


# ---------------------------------------------------------------- model

class PolarityCNN(nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()
        n_filters = FILTERS_PER_WIDTH * len(WIDTHS)
        k = max(WIDTHS)
        self.embedding = nn.Embedding(vocab_size, EMBED_DIM, padding_idx=0)
        self.conv = nn.Conv1d(EMBED_DIM, n_filters, kernel_size=k, padding=k // 2)
        self.pool = nn.MaxPool1d(kernel_size=LENGTH)
        self.dropout = nn.Dropout(DROPOUT)
        self.linear = nn.Linear(n_filters, 2)
        # Width-w filters keep the w taps centred as with "same" padding: width 3 -> taps 1..3,
        # width 4 -> taps 0..3, width 5 -> all taps.
        mask = torch.zeros(n_filters, 1, k)
        starts = {3: 1, 4: 0, 5: 0}
        for bank, width in enumerate(WIDTHS):
            mask[bank * FILTERS_PER_WIDTH:(bank + 1) * FILTERS_PER_WIDTH, :, starts[width]:starts[width] + width] = 1
        self.register_buffer("tap_mask", mask)
        self.mask_baked = False

    def bake_mask(self) -> None:
        """Fold the tap mask into conv.weight so the exported Conv has a plain weight initializer."""
        with torch.no_grad():
            self.conv.weight.mul_(self.tap_mask)
        self.mask_baked = True

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids).transpose(1, 2)  # (N, EMBED_DIM, LENGTH)
        if self.mask_baked:
            x = self.conv(x)
        else:
            x = nn.functional.conv1d(x, self.conv.weight * self.tap_mask, self.conv.bias, padding=self.conv.padding)
        x = self.pool(torch.relu(x))  # (N, filters, 1)
        x = torch.flatten(x, 1)
        return self.linear(self.dropout(x))


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


# ---------------------------------------------------------------- checks

def check_graph(path: Path) -> list[str]:
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    inits = {t.name for t in proto.graph.initializer}
    ops = [n.op_type for n in proto.graph.node]
    bad = sorted(set(ops) - ALLOWED_OPS)
    assert not bad, f"disallowed ops in the graph: {bad}"
    for node in proto.graph.node:
        if node.op_type == "Gather":
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            assert axis == 0 and node.input[0] in inits, f"Gather {node.name} is not an embedding lookup"
        if node.op_type == "Conv":
            assert node.input[1] in inits, f"Conv {node.name} weight is not an initializer"
    return ops


# ---------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with rt-polarity.pos/.neg")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this script's folder)")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)

    splits = split_data(args.data)
    vocab = build_vocab(splits["train"][0])
    assert all(len(t.splitlines()) == 1 and t == t.strip() for t in vocab), "a token would break vocab.txt"
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    word_ids = {w: i for i, w in enumerate(vocab)}
    with open(out / "test_sentences.tsv", "w", encoding="utf-8", newline="\n") as f:
        for sentence, label in zip(*splits["test"]):
            f.write(f"{label}\t{sentence}\n")

    x = {name: encode(s, word_ids) for name, (s, _) in splits.items()}
    y = {name: labels for name, (_, labels) in splits.items()}
    print({name: len(v) for name, v in y.items()}, "vocabulary", len(vocab))

    model = PolarityCNN(len(vocab))
    optimiser = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(SEED)
    x_train, y_train = torch.from_numpy(x["train"]), torch.from_numpy(y["train"])

    best_val, best_state, best_epoch, stale, epochs_run = -1.0, None, 0, 0, 0
    start = time.perf_counter()
    for epoch in range(1, MAX_EPOCHS + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for i in range(0, len(order), BATCH):
            batch = order[i:i + BATCH]
            optimiser.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        epochs_run = epoch
        val = accuracy(model, x["validation"], y["validation"])
        print(f"epoch {epoch}: loss {total / len(order):.4f}  train acc {accuracy(model, x['train'], y['train']):.4f}"
              f"  val acc {val:.4f}  ({time.perf_counter() - start:.0f} s)")
        if val > best_val:
            best_val, best_epoch, stale = val, epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= PATIENCE:
                print("early stop")
                break
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    model.eval()

    # Bake the mask, check nothing changed, export.
    with torch.no_grad():
        before = model(torch.from_numpy(x["test"]))
        model.bake_mask()
        after = model(torch.from_numpy(x["test"]))
    assert torch.allclose(before, after, atol=1e-5), "baking the tap mask changed the logits"
    onnx_path = out / "polarity_cnn.onnx"
    torch.onnx.export(
        model, torch.from_numpy(x["test"][:1]), str(onnx_path),
        input_names=["token_ids"], output_names=["logits"], opset_version=17,
        dynamic_axes={"token_ids": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True, dynamo=False,
    )
    ops = check_graph(onnx_path)
    print("ONNX ops:", " -> ".join(ops))

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {"token_ids": x["test"]})[0]
    diff = float(np.abs(onnx_logits - after.numpy()).max())
    assert diff <= 1e-4, f"onnxruntime and torch disagree by {diff}"
    pred = onnx_logits.argmax(1)
    test_acc = float((pred == y["test"]).mean())
    frac_pos = float((pred == 1).mean())
    print(f"best epoch {best_epoch}, val acc {best_val:.4f}; onnxruntime test acc {test_acc:.4f}, "
          f"fraction positive {frac_pos:.3f}, max |onnx - torch| {diff:.2e}")

    metrics = {
        "test_accuracy_onnxruntime": round(test_acc, 4),
        "validation_accuracy": round(best_val, 4),
        "fraction_positive_predictions_test": round(frac_pos, 4),
        "fraction_positive_labels_test": round(float(y["test"].mean()), 4),
        "max_abs_logit_diff_onnx_vs_torch": diff,
        "split_sizes": {name: int(len(v)) for name, v in y.items()},
        "vocabulary_size": len(vocab),
        "sequence_length": LENGTH,
        "embedding_dim": EMBED_DIM,
        "filters": {"width_3": FILTERS_PER_WIDTH, "width_4": FILTERS_PER_WIDTH, "width_5": FILTERS_PER_WIDTH},
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "training_seconds": round(seconds, 1),
        "torch_version": torch.__version__,
        "onnx_ops": ops,
        "model_bytes": onnx_path.stat().st_size,
        "seed": SEED,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
