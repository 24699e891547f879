"""onnxruntime sessions, built one way for every ONNX model facetrace runs.

This module and the model files beside it are the only places that import an inference runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx
import onnx.helper
import onnx.numpy_helper
import onnxruntime as ort

from facetrace.errors import ModelLoadError, ModelNotInstalledError

__all__ = ["PreluForm", "default_threads", "load_onnx_session", "padded_blob"]

PreluForm = Literal["conv", "max", "four-op"]


def default_threads() -> int:
    """Intra-op threads per session: ``FACETRACE_THREADS``, else 1.

    One thread per session and one session per worker thread scales better on small machines than one
    session fanning out over every core (the server and the video pipeline run several at once).
    """
    value = os.environ.get("FACETRACE_THREADS", "1")
    try:
        return max(1, int(value))
    except ValueError:
        return 1


def padded_blob(image: npt.NDArray[np.uint8], divisor: int, *, rgb: bool = False) -> npt.NDArray[np.float32]:
    """``image`` (BGR, H×W×3) as a (1, 3, H', W') float32 blob, 0–255, zero-padded at the bottom and right to
    multiples of ``divisor``: fully convolutional detectors run at the picture's own size (no resize, so no
    small face shrinks), provided every stride divides the input; ``rgb`` swaps the channels for models
    trained on RGB."""
    height, width = image.shape[:2]
    pad_h = ((height - 1) // divisor + 1) * divisor
    pad_w = ((width - 1) // divisor + 1) * divisor
    blob = np.zeros((1, 3, pad_h, pad_w), dtype=np.float32)
    blob[0, :, :height, :width] = (image[:, :, ::-1] if rgb else image).transpose(2, 0, 1)
    return blob


def load_onnx_session(
    path: Path,
    *,
    threads: int | None = None,
    batch_dim: bool = False,
    dynamic_spatial: bool = False,
    tune: Callable[[ort.SessionOptions], None] | None = None,
    prelu_form: PreluForm = "conv",
) -> ort.InferenceSession:
    """Load ``path`` into an onnxruntime CPU session.

    Weights listed as graph inputs (as in SFace 2021dec) are removed from the inputs first: otherwise
    onnxruntime treats them as overridable and skips constant folding, which costs about 40% per face.
    With ``batch_dim`` the first input's batch axis is made symbolic so several faces run in one call; with
    ``dynamic_spatial`` its height and width axes (NCHW) are, so a detector runs at each image's own size.
    The default ``ORT_ENABLE_ALL`` is measured fastest for both YuNet and SFace on x86 CPUs
    (``benchmarks/bench_pipeline.py``). PRelu nodes are rewritten without branches (``branchless_prelu``;
    ``prelu_form`` picks its form, for comparison). ``tune`` may change the
    options last (``bench_pipeline.py --section sessions`` measures alternatives: none beat these defaults
    on real crops and photos, see docs/server.md; nor, per call as live streams make them, did no spinning,
    no memory pattern, no arena, denormals as zero or deterministic compute: docs/video.md).
    """
    if not path.is_file():
        raise ModelNotInstalledError(f"model file {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError... depending on the damage
        raise ModelLoadError(f"{path} is not a readable ONNX model: {exc}") from None
    initializers = {tensor.name for tensor in model.graph.initializer}
    real_inputs = [value for value in model.graph.input if value.name not in initializers]
    if not real_inputs:
        raise ModelLoadError(f"{path} has no input besides its weights")
    del model.graph.input[:]
    model.graph.input.extend(real_inputs)
    if batch_dim:
        first = model.graph.input[0].type.tensor_type.shape.dim
        if len(first) > 0:
            first[0].dim_param = "N"
        for output in model.graph.output:
            dims = output.type.tensor_type.shape.dim
            if len(dims) > 0:
                dims[0].dim_param = "N"
    if dynamic_spatial:
        dims = model.graph.input[0].type.tensor_type.shape.dim
        if len(dims) != 4:
            raise ModelLoadError(f"{path}: the input is not an NCHW image tensor")
        dims[2].dim_param, dims[3].dim_param = "H", "W"
        for output in model.graph.output:
            for dim in output.type.tensor_type.shape.dim:
                if not dim.dim_param:
                    dim.dim_param = "D"
    branchless_prelu(model, form=prelu_form)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if tune is not None:
        tune(options)
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelLoadError(f"onnxruntime cannot load {path}: {exc}") from None


def branchless_prelu(model: onnx.ModelProto, *, form: PreluForm = "conv") -> int:
    """Replace every ``PRelu(x, slope)`` with branchless ops onnxruntime runs fast; returns how many.

    onnxruntime's CPU PRelu kernel slows down with the sign pattern of its input: on SFace with real face
    crops its 27 PRelu nodes took 15 ms of a 29 ms forward pass, against 5 ms on a constant image.
    ``four-op``: ``Relu(x) + slope * Min(x, 0)``, bit-identical, brought the pass to about 19.6 ms on this
    machine (onnxruntime's profiler, one thread). ``max``: ``Max(x, slope * x)`` for nodes whose slopes are
    all ≤ 1 (only then exact; 2 of SFace's 27 have slopes up to 1.12 and keep the four ops), bit-identical.
    ``conv`` (default): ``Relu(x) + DwConv(Relu(DwConv(x, -1)), -slope)`` with 1×1 depthwise convolutions
    for per-channel slopes (shape (C, 1, 1)), any slope: onnxruntime keeps those in its blocked NCHWc layout
    and fuses the Relu and the Add into them, where ``Min``/``Max`` forced a layout reorder before and after
    every activation (13% of SFace's pass). Exact in arithmetic, it differs from PRelu by float rounding in
    the fused kernels only (≤ 1e-6 on SFace's vectors). SFace process CPU per face, one at a time: ``max``
    ~4% less than ``four-op``, ``conv`` ~12% less (``bench_streams`` section *batch*;
    docs/video.md). Other slope shapes fall back to ``max`` or ``four-op``.
    """
    zero = "facetrace_prelu_zero"
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    added: list[onnx.TensorProto] = []
    rewritten = 0
    for node in model.graph.node:
        if node.op_type != "PRelu" or len(node.input) != 2 or len(node.output) != 1:
            nodes.append(node)
            continue
        rewritten += 1
        x, slope = node.input
        y, name = node.output[0], node.name
        values = initializers.get(slope)
        channels = values.shape[-3] if values is not None and values.ndim >= 3 else 0
        if form == "conv" and channels and values is not None and values.size == channels:
            minus_one, minus_slope = f"{name}__minus_one", f"{name}__minus_slope"
            added += [
                onnx.numpy_helper.from_array(np.full((channels, 1, 1, 1), -1.0, np.float32), minus_one),
                onnx.numpy_helper.from_array((-values).reshape(channels, 1, 1, 1).astype(np.float32), minus_slope),
            ]
            nodes += [
                onnx.helper.make_node("Relu", [x], [f"{y}__pos"], name=f"{name}__relu"),
                onnx.helper.make_node(
                    "Conv", [x, minus_one], [f"{y}__flip"], name=f"{name}__flip", group=channels
                ),
                onnx.helper.make_node("Relu", [f"{y}__flip"], [f"{y}__negpart"], name=f"{name}__relu_neg"),
                onnx.helper.make_node(
                    "Conv", [f"{y}__negpart", minus_slope], [f"{y}__scaled"], name=f"{name}__scale", group=channels
                ),
                onnx.helper.make_node("Add", [f"{y}__scaled", f"{y}__pos"], [y], name=f"{name}__add"),
            ]
        elif form != "four-op" and values is not None and values.size and float(values.max()) <= 1.0:
            # max(x, s·x) is x for x ≥ 0 and s·x below 0 exactly when every slope s ≤ 1: two passes, not four
            nodes += [
                onnx.helper.make_node("Mul", [x, slope], [f"{y}__scaled"], name=f"{name}__mul"),
                onnx.helper.make_node("Max", [x, f"{y}__scaled"], [y], name=f"{name}__max"),
            ]
        else:
            nodes += [
                onnx.helper.make_node("Relu", [x], [f"{y}__pos"], name=f"{name}__relu"),
                onnx.helper.make_node("Min", [x, zero], [f"{y}__neg"], name=f"{name}__min"),
                onnx.helper.make_node("Mul", [f"{y}__neg", slope], [f"{y}__scaled"], name=f"{name}__mul"),
                onnx.helper.make_node("Add", [f"{y}__pos", f"{y}__scaled"], [y], name=f"{name}__add"),
            ]
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        model.graph.initializer.extend(added)
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((), dtype=np.float32), zero))
    return rewritten
