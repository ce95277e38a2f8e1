"""Measuring explanations: the saliency metric (LSC), OptBox, sparsity, Win %, agreement with
ground-truth masks, PAIR-saliency baselines run on ONNX models, SMUG as a PAIR method, and the
model-randomisation sanity checks (`smug eval`, `smug sanity`; see docs/evaluation.md).

Entry points: `comparison.compare` / `summarize`, `sanity.sanity_check`, `baselines.saliency_map`
and `baselines.SmugSaliency`, the functions of `metrics`. Everything works on the image grid of a
model input (`smugir.units.InputLayout`), so flat MNIST vectors, NHWC and NCHW models are measured
the same way.
"""
