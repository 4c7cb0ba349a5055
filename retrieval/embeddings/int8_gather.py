"""Look up int8 embedding rows before dequantising them: an exact edit of an ONNX model's bytes.

Why. The MiniLM file stores every weight as int8 plus a float scale and dequantises it in the
graph (``Cast`` to float, then ``Mul`` by the scale). onnxruntime's constant folding evaluates
that at load, so the 30,522 x 384 word-embedding table sits in each worker as 47 MB of float32,
although a call reads only its own 10-256 rows. Rewritten as ``Gather`` of the int8 rows and of
their scales, then ``Cast`` and ``Mul`` on those rows only, the table stays int8 (11.7 MB) and
nothing is folded. Each output element is still ``float(q) * scale`` of its row, the same single
float32 multiplication, so the embeddings are bit-for-bit the ones the original graph gives.

Why by hand. An ONNX model is one protobuf message. The ``onnx`` package would parse it, but it
is not a dependency of the gateway and its import would stay in every worker for one edit at
load. Only the fields this edit reads are decoded here (a node's inputs, outputs, operator and
integer attributes; an initializer's name, element type and shape); everything else, the weights
included, is copied through as bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from retrieval.errors import RetrievalConfigError

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
# Field numbers of onnx.proto3 that the edit reads or writes.
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_OUTPUT = 1, 5, 12
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 1, 2, 3, 4, 5, 7
_ATTR_NAME, _ATTR_INT, _ATTR_GRAPH, _ATTR_GRAPHS, _ATTR_TYPE = 1, 3, 6, 11, 20
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME = 1, 2, 8
_VALUE_INFO_NAME = 1
_ATTR_TYPE_INT = 2
_FLOAT, _UINT8, _INT8 = 1, 2, 3


class ModelRewriteError(RetrievalConfigError):
    """The model file is not a protobuf message this edit can read."""


@dataclass(frozen=True)
class _Field:
    number: int
    wire: int
    value: int | memoryview  # a varint's value, else the payload
    raw: memoryview  # the whole field, key included, copied through when unchanged


@dataclass(frozen=True)
class _Node:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    op_type: str
    domain: str
    ints: dict[str, int]  # integer attributes: Gather's ``axis``, Cast's ``to``
    has_subgraph: bool


@dataclass(frozen=True)
class _Tensor:
    data_type: int
    dims: tuple[int, ...]


@dataclass(frozen=True)
class _Dequantised:
    """``output = Mul(Cast(table), scale)`` over int8 ``table`` with one scale per row."""

    table: str
    scale: str
    cast_at: int
    mul_at: int


def gather_before_dequantise(model: bytes) -> tuple[bytes, tuple[str, ...]]:
    """``model`` with each dequantised embedding table gathered as int8 rows, and the tables' names.

    A ``Gather`` (axis 0) over ``Mul(Cast(q), scale)``, with ``q`` an int8 or uint8 initializer
    of shape ``[rows, width]`` and ``scale`` a float initializer of shape ``[rows, 1]``, becomes
    ``Mul(Cast(Gather(q, ids)), Gather(scale, ids))`` when nothing else reads the ``Cast`` or the
    ``Mul``. A model without that pattern comes back unchanged, with no names.
    """
    fields = list(_fields(memoryview(model)))
    graph_fields = [f for f in fields if f.number == _MODEL_GRAPH and isinstance(f.value, memoryview)]
    if len(graph_fields) != 1:
        raise ModelRewriteError("the model file holds no single ONNX graph")
    graph = list(_fields(_payload(graph_fields[0])))
    nodes = [_node(_payload(f)) for f in graph if f.number == _GRAPH_NODE]
    if any(node.has_subgraph for node in nodes):  # a subgraph may read any outer name: leave it alone
        return model, ()
    tensors = dict(_tensor(_payload(f)) for f in graph if f.number == _GRAPH_INITIALIZER)
    graph_outputs = {_string_field(_payload(f), _VALUE_INFO_NAME) for f in graph if f.number == _GRAPH_OUTPUT}
    plan = _plan(nodes, tensors, graph_outputs)
    if not plan:
        return model, ()
    names = {name for node in nodes for name in (*node.inputs, *node.outputs)} | tensors.keys()
    new_graph = list(_rewritten_graph(graph, nodes, plan, names))
    graph_key = _encode_varint(_MODEL_GRAPH << 3 | _BYTES) + _encode_varint(sum(map(len, new_graph)))
    parts = ([graph_key, *new_graph] if f is graph_fields[0] else [f.raw] for f in fields)
    out = b"".join(part for field_parts in parts for part in field_parts)  # one copy of the model
    return out, tuple(step.table for step in plan.values())


def _plan(nodes: Sequence[_Node], tensors: dict[str, _Tensor], graph_outputs: set[str]) -> dict[int, _Dequantised]:
    """The Gather nodes to rewrite (by position) and the dequantisation each one reads."""
    producer = {name: at for at, node in enumerate(nodes) for name in node.outputs}
    readers = Counter(name for node in nodes for name in node.inputs)
    plan: dict[int, _Dequantised] = {}
    for at, node in enumerate(nodes):
        if not _is(node, "Gather") or node.ints.get("axis", 0) != 0 or (len(node.inputs), len(node.outputs)) != (2, 1):
            continue
        mul_name = node.inputs[0]
        mul_at = producer.get(mul_name)
        if mul_at is None or not _is(nodes[mul_at], "Mul") or len(nodes[mul_at].inputs) != 2:
            continue
        cast_name, scale = nodes[mul_at].inputs
        cast_at = producer.get(cast_name)
        if cast_at is None or not _is(nodes[cast_at], "Cast") or nodes[cast_at].ints.get("to") != _FLOAT:
            continue
        table = nodes[cast_at].inputs[0]
        q, s = tensors.get(table), tensors.get(scale)
        exclusive = all(readers[name] == 1 and name not in graph_outputs for name in (cast_name, mul_name))
        if (
            q is not None
            and s is not None
            and exclusive
            and q.data_type in (_INT8, _UINT8)
            and len(q.dims) == 2
            and s.data_type == _FLOAT
            and s.dims == (q.dims[0], 1)
        ):
            plan[at] = _Dequantised(table, scale, cast_at, mul_at)
    return plan


def _rewritten_graph(
    graph: Sequence[_Field], nodes: Sequence[_Node], plan: dict[int, _Dequantised], names: set[str]
) -> Iterator[bytes | memoryview]:
    """The graph's fields in their order, with each planned Gather replaced in place (so still sorted)."""
    dropped = {at for step in plan.values() for at in (step.cast_at, step.mul_at)}
    at = -1
    for field in graph:
        if field.number != _GRAPH_NODE:
            yield field.raw
            continue
        at += 1
        if at in plan:
            yield from _gather_rows(nodes[at], plan[at], names)
        elif at not in dropped:
            yield field.raw


def _gather_rows(gather: _Node, step: _Dequantised, names: set[str]) -> Iterator[bytes]:
    ids, (out,) = gather.inputs[1], gather.outputs
    rows_q, rows_scale, rows_f, mul = (f"{out}/int8_gather/{part}" for part in ("q", "scale", "f", "mul"))
    if {rows_q, rows_scale, rows_f, mul} & names:
        raise ModelRewriteError(f"the model already has names under {out}/int8_gather/")
    yield _node_field("Gather", [step.table, ids], rows_q, rows_q, axis=0)
    yield _node_field("Gather", [step.scale, ids], rows_scale, rows_scale, axis=0)
    yield _node_field("Cast", [rows_q], rows_f, rows_f, to=_FLOAT)
    yield _node_field("Mul", [rows_f, rows_scale], out, mul)


# -- reading -----------------------------------------------------------------------------------


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ModelRewriteError("the model file ends inside a number")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[_Field]:
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        wire = key & 7
        value: int | memoryview
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _BYTES:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ModelRewriteError(f"the model file has a protobuf field of wire type {wire}")
        if pos > len(buf):
            raise ModelRewriteError("the model file ends inside a field")
        yield _Field(key >> 3, wire, value, buf[start:pos])


def _payload(field: _Field) -> memoryview:
    if not isinstance(field.value, memoryview) or field.wire != _BYTES:
        raise ModelRewriteError(f"protobuf field {field.number} is not a message or string")
    return field.value


def _int(field: _Field) -> int:
    """A varint field as int64 (negative numbers are ten-byte two's complement)."""
    if not isinstance(field.value, int):
        raise ModelRewriteError(f"protobuf field {field.number} is not a number")
    return field.value - (1 << 64) if field.value >= 1 << 63 else field.value


def _text(field: _Field) -> str:
    return bytes(_payload(field)).decode()


def _string_field(message: memoryview, number: int) -> str:
    return next((_text(f) for f in _fields(message) if f.number == number), "")


def _node(message: memoryview) -> _Node:
    inputs: list[str] = []
    outputs: list[str] = []
    op_type = domain = ""
    ints: dict[str, int] = {}
    has_subgraph = False
    for field in _fields(message):
        if field.number == _NODE_INPUT:
            inputs.append(_text(field))
        elif field.number == _NODE_OUTPUT:
            outputs.append(_text(field))
        elif field.number == _NODE_OP_TYPE:
            op_type = _text(field)
        elif field.number == _NODE_DOMAIN:
            domain = _text(field)
        elif field.number == _NODE_ATTRIBUTE:
            attribute = list(_fields(_payload(field)))
            has_subgraph |= any(f.number in (_ATTR_GRAPH, _ATTR_GRAPHS) for f in attribute)
            name = next((_text(f) for f in attribute if f.number == _ATTR_NAME), "")
            value = next((_int(f) for f in attribute if f.number == _ATTR_INT), None)
            if value is not None:
                ints[name] = value
    return _Node(tuple(inputs), tuple(outputs), op_type, domain, ints, has_subgraph)


def _tensor(message: memoryview) -> tuple[str, _Tensor]:
    name = ""
    data_type = 0
    dims: list[int] = []
    for field in _fields(message):
        if field.number == _TENSOR_NAME:
            name = _text(field)
        elif field.number == _TENSOR_DATA_TYPE:
            data_type = _int(field)
        elif field.number == _TENSOR_DIMS and field.wire == _BYTES:  # packed
            packed, pos = _payload(field), 0
            while pos < len(packed):
                dim, pos = _varint(packed, pos)
                dims.append(dim)
        elif field.number == _TENSOR_DIMS:
            dims.append(_int(field))
    return name, _Tensor(data_type, tuple(dims))


def _is(node: _Node, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in ("", "ai.onnx")


# -- writing -----------------------------------------------------------------------------------


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _BYTES) + _encode_varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _encode_varint(number << 3 | _VARINT) + _encode_varint(value)


def _node_field(op_type: str, inputs: Sequence[str], output: str, name: str, **ints: int) -> bytes:
    """A graph's ``node`` field: one NodeProto of the default domain with integer attributes."""
    parts = [_len_field(_NODE_INPUT, value.encode()) for value in inputs]
    parts += [
        _len_field(_NODE_OUTPUT, output.encode()),
        _len_field(_NODE_NAME, name.encode()),
        _len_field(_NODE_OP_TYPE, op_type.encode()),
    ]
    for attribute_name, value in ints.items():
        attribute = _len_field(_ATTR_NAME, attribute_name.encode()) + _int_field(_ATTR_INT, value)
        parts.append(_len_field(_NODE_ATTRIBUTE, attribute + _int_field(_ATTR_TYPE, _ATTR_TYPE_INT)))
    return _len_field(_GRAPH_NODE, b"".join(parts))
