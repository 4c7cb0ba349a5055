"""MiniLM's memory per worker: int8 embedding rows gathered before dequantising, and glibc's thresholds pinned.

Both run the shipped model and the real C library: the rewrite must not move a single bit of any
embedding, and each change must free what it claims (the folded graph, the freed heap).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from retrieval.embeddings.int8_gather import ModelRewriteError, gather_before_dequantise
from retrieval.embeddings.minilm import default_model_path, default_tokenizer_path, load_model

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = default_model_path().read_bytes()
TABLES = ("inner.embeddings.word_embeddings.weight_q", "inner.embeddings.position_embeddings.weight_q")


def session(model: bytes | Path, optimised: Path | None = None) -> ort.InferenceSession:
    """``load_model``'s options; ``optimised`` saves the graph onnxruntime keeps after folding."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    if optimised is not None:
        options.optimized_model_filepath = str(optimised)
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def rewritten() -> bytes:
    model, tables = gather_before_dequantise(SHIPPED)
    assert tables == TABLES
    return model


@pytest.mark.parametrize(("texts", "pieces"), [(1, 3), (1, 12), (3, 40), (2, 256)])
def test_embeddings_are_bit_for_bit_the_originals(rewritten: bytes, texts: int, pieces: int) -> None:
    original, edited = session(default_model_path()), session(rewritten)
    ids = np.random.default_rng(pieces).integers(0, 30_522, (texts, pieces))
    ids[:, 1] = [0, 30_521, 101][:texts]  # the table's first and last rows too
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    assert np.array_equal(original.run(None, feeds)[0], edited.run(None, feeds)[0])


def test_the_folded_graph_no_longer_holds_a_float_word_table(rewritten: bytes, tmp_path: Path) -> None:
    """What onnxruntime keeps after constant folding: 30,522 x 384 x (4 - 1) bytes less."""
    session(default_model_path(), tmp_path / "original.onnx")
    session(rewritten, tmp_path / "rewritten.onnx")
    saved = (tmp_path / "original.onnx").stat().st_size - (tmp_path / "rewritten.onnx").stat().st_size
    assert saved >= 30_522 * 384 * 3


def test_a_model_without_the_pattern_comes_back_as_it_was(rewritten: bytes) -> None:
    again, tables = gather_before_dequantise(rewritten)
    assert again is rewritten and tables == ()


@pytest.mark.parametrize("damage", [b"\x0f\x00", SHIPPED[:1000], b"\x3a\x02\x08"])
def test_a_file_that_is_not_an_onnx_model_is_refused(damage: bytes) -> None:
    with pytest.raises(ModelRewriteError):
        gather_before_dequantise(damage)


def open_files() -> list[str]:
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor, closed by now
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return links


def test_a_load_leaves_no_copy_of_the_model_open() -> None:
    """The rewritten bytes reach onnxruntime through a memfd, closed once the session has loaded."""
    before = open_files()
    loaded = load_model.__wrapped__(default_model_path(), default_tokenizer_path())
    assert loaded.session.get_inputs()[0].name == "input_ids"
    assert [link for link in open_files() if link not in before] == []


HEAP_SCRIPT = textwrap.dedent(
    """
    import ctypes, sys
    from pathlib import Path
    from retrieval.embeddings.minilm import keep_heap_thresholds
    if sys.argv[1] == "pinned":
        keep_heap_thresholds()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    def anonymous_kib():
        line = next(l for l in Path("/proc/self/smaps_rollup").read_text().splitlines() if l.startswith("Anonymous:"))
        return int(line.split()[1])
    size = 16 << 20
    first = libc.malloc(size); ctypes.memset(first, 1, size); libc.free(first)  # glibc may raise its thresholds here
    before = anonymous_kib()
    block = libc.malloc(size); ctypes.memset(block, 1, size)
    after_it = libc.malloc(64); ctypes.memset(after_it, 1, 64)  # keeps the block off the heap's top
    libc.free(block)
    print(anonymous_kib() - before)
    """
)


def test_pinned_heap_thresholds_give_a_freed_large_block_back() -> None:
    """Unpinned, glibc serves the second 16 MiB block from the heap and keeps it once freed."""
    kept = {}
    for mode in ("dynamic", "pinned"):
        command = [sys.executable, "-c", HEAP_SCRIPT, mode]
        kept[mode] = int(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout)
    assert kept["dynamic"] > 12 * 1024 and kept["pinned"] < 2 * 1024, kept
