"""Export a trained LightGBM booster to ONNX, and prove the copy is faithful.

The exported graph has exactly one input and one output, the contract the
scorer relies on:

* ``features``: float32 ``[N, F]``, columns in
  :data:`~featurestore.definitions.FEATURE_NAMES` order;
* ``fraud_probability``: float32 ``[N]``, the probability of the fraud class.

The converter's own ``label`` output is dropped: its declared shape does not
match what ONNX Runtime returns, so keeping it logs a warning on every call.
The version of a model is the start of the SHA-256 of its ONNX bytes, so the
same file always has the same version and any change gives a new one.

Example:
    >>> model_version(b"not really a model")
    '29a6a9f19463'
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Final

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from dataflows.errors import ModelError

if TYPE_CHECKING:
    import lightgbm as lgb

logger = logging.getLogger(__name__)

INPUT_NAME: Final = "features"
OUTPUT_NAME: Final = "fraud_probability"
#: Highest default-domain opset the LightGBM converter supports here.
TARGET_OPSET: Final = 15
#: Largest allowed gap between ONNX Runtime's and LightGBM's probabilities.
PARITY_TOLERANCE: Final = 1e-5
VERSION_LENGTH: Final = 12


def model_version(onnx_bytes: bytes) -> str:
    """Return the version of a model: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(onnx_bytes).hexdigest()[:VERSION_LENGTH]


def booster_to_onnx(booster: lgb.Booster, feature_count: int) -> onnx.ModelProto:
    """Convert a binary LightGBM booster to the single-output ONNX graph.

    Args:
        booster: A booster trained with the ``binary`` objective.
        feature_count: Width ``F`` of the input matrix.

    Returns:
        A checked ONNX model reading ``features`` and writing
        ``fraud_probability``.
    """
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    converted = onnxmltools.convert_lightgbm(
        booster,
        name="fraudflow",
        initial_types=[(INPUT_NAME, FloatTensorType([None, feature_count]))],
        zipmap=False,
        target_opset=TARGET_OPSET,
    )
    graph = _fraud_probability_graph(converted.graph)
    model = helper.make_model(
        graph, opset_imports=converted.opset_import, producer_name="fraudflow"
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def _fraud_probability_graph(graph: onnx.GraphProto) -> onnx.GraphProto:
    """Keep only the nodes leading to the fraud column of ``probabilities``."""
    probabilities = next(o.name for o in graph.output if o.name != "label")
    fraud_column = helper.make_tensor("fraud_column", onnx.TensorProto.INT64, [], [1])
    gather = helper.make_node(
        "Gather", [probabilities, "fraud_column"], [OUTPUT_NAME], axis=1
    )
    output = helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, [None])
    nodes = _needed_nodes([*graph.node, gather], OUTPUT_NAME)
    needed_inputs = {name for node in nodes for name in node.input}
    initializers = [t for t in graph.initializer if t.name in needed_inputs]
    return helper.make_graph(
        nodes,
        graph.name,
        list(graph.input),
        [output],
        initializer=[*initializers, fraud_column],
    )


def _needed_nodes(nodes: list[onnx.NodeProto], output: str) -> list[onnx.NodeProto]:
    """Return the nodes ``output`` depends on, in their original order."""
    wanted = {output}
    kept = []
    for node in reversed(nodes):
        if wanted.intersection(node.output):
            kept.append(node)
            wanted.update(node.input)
    return kept[::-1]


def onnx_session(onnx_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    """Open an ONNX Runtime session with ``threads`` intra- and inter-op threads.

    Raises:
        ModelError: ONNX Runtime cannot load the bytes.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            onnx_bytes, options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ONNX Runtime raises several unrelated types.
        detail = f"{type(exc).__name__}: {exc}"
        raise ModelError(f"ONNX Runtime refused the model: {detail}") from exc


def check_parity(
    onnx_bytes: bytes,
    booster: lgb.Booster,
    matrix: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Check that ONNX Runtime and LightGBM give the same probabilities.

    Args:
        onnx_bytes: The exported model.
        booster: The booster it was exported from.
        matrix: Rows to score, float32 ``[N, F]``.
        tolerance: Largest allowed absolute difference.

    Returns:
        The largest absolute difference seen.

    Raises:
        ModelError: Some row differs by more than ``tolerance``.
    """
    rows = np.ascontiguousarray(matrix, dtype=np.float32)
    session = onnx_session(onnx_bytes)
    exported = session.run([OUTPUT_NAME], {INPUT_NAME: rows})[0]
    native = booster.predict(rows)

    gaps = np.abs(exported.astype(np.float64) - native)
    worst = float(gaps.max(initial=0.0))
    if worst > tolerance:
        row = int(gaps.argmax())
        message = (
            f"ONNX export differs from LightGBM: expected max abs difference "
            f"<= {tolerance!r}, got {worst!r} at row {row} of {len(rows)}"
        )
        raise ModelError(message)
    logger.info("onnx parity checked rows=%d max_abs_diff=%.3g", len(rows), worst)
    return worst
