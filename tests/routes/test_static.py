"""The static topic prior of the `fast` model: ONNX table reading, the encoder, the model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from routes._embedding import EmbeddingClassifier
from routes._linear import LinearClassifier, ModelFileError
from routes._models import read_model
from routes._static import STATIC_PIECES, StaticClassifier, StaticEncoder, build_encoder, load_tokenizer
from routes.training.onnx import WORD_EMBEDDINGS, OnnxReadError, initializers, word_embeddings
from tests.support.classifiers import toy_embedding_model, user_messages


def test_onnx_reader_dequantises_the_word_table(tmp_path: Path) -> None:
    quantised = np.array([[1, -2, 3], [127, 0, -127]], dtype=np.int8)
    scale = np.array([[0.5], [0.01]], dtype=np.float32)
    tables = [numpy_helper.from_array(quantised, f"{WORD_EMBEDDINGS}_q"),
              numpy_helper.from_array(scale, f"{WORD_EMBEDDINGS}_scale")]
    cast = helper.make_node("Cast", [f"{WORD_EMBEDDINGS}_q"], ["table"], to=onnx.TensorProto.FLOAT)
    output = helper.make_tensor_value_info("table", onnx.TensorProto.FLOAT, [2, 3])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(helper.make_graph([cast], "tiny", [], [output], tables)), path)
    assert set(initializers(path, {f"{WORD_EMBEDDINGS}_q"})) == {f"{WORD_EMBEDDINGS}_q"}
    np.testing.assert_allclose(word_embeddings(path), quantised * scale)


def test_a_file_without_the_word_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    onnx.save(helper.make_model(helper.make_graph([], "empty", [], [])), path)
    with pytest.raises(OnnxReadError, match="no int8 word-embedding table"):
        word_embeddings(path)


def test_installed_minilm_table_is_read() -> None:
    table = word_embeddings()
    assert table.shape == (30_522, 384) and table.dtype == np.float32
    tokenizer = load_tokenizer()
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    calculus = unit[tokenizer.token_to_id("calculus")]
    # semantic neighbours survive quantisation: algebra is far closer to calculus than cooking is
    assert (
        calculus @ unit[tokenizer.token_to_id("algebra")]
        > calculus @ unit[tokenizer.token_to_id("cooking")] + 0.2
    )


def test_encoder_is_the_normalised_mean_of_the_first_pieces() -> None:
    tokenizer = load_tokenizer()
    rng = np.random.default_rng(0)
    vocab = tokenizer.get_vocab_size()
    encoder = StaticEncoder(
        table=rng.integers(-127, 128, (vocab, 8)).astype(np.int8), scales=rng.random(vocab).astype(np.float32)
    )
    text = "Find the degree of the field extension"
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    expected = (encoder.table[ids] * encoder.scales[ids, None]).mean(axis=0)
    (row,) = encoder.embed([text])
    np.testing.assert_allclose(row, expected / np.linalg.norm(expected), rtol=1e-5)
    long_text = " ".join(["alpha"] * STATIC_PIECES + ["omega"] * 20)
    np.testing.assert_allclose(encoder.embed([long_text])[0], encoder.embed(["alpha"])[0], rtol=1e-5)
    batch = encoder.embed([text, "", long_text])
    np.testing.assert_allclose(batch[0], row, rtol=1e-6)
    assert not batch[1].any()  # no pieces: a zero vector, which every centroid scores alike


def test_built_table_is_centred_projected_and_int8() -> None:
    rng = np.random.default_rng(1)
    vocab = load_tokenizer().get_vocab_size()
    matrix = (rng.normal(size=(vocab, 16)) + 3.0).astype(np.float32)  # a shared offset, as in MiniLM
    encoder = build_encoder(matrix, ["the cat sat on the mat"] * 5, dims=4)
    assert encoder.table.dtype == np.int8 and encoder.table.shape == (vocab, 4)
    assert np.abs(encoder.table).max() == 127
    the = load_tokenizer().token_to_id("the")
    dequantised = encoder.table.astype(np.float32) * encoder.scales[:, None]
    # centred on the training pieces' mean: the most frequent piece sits near the origin
    assert np.linalg.norm(dequantised[the]) < np.median(np.linalg.norm(dequantised, axis=1))


def _static_model(encoder: StaticEncoder) -> StaticClassifier:
    return StaticClassifier(toy_embedding_model(encoder, dims=encoder.table.shape[1]))


def test_static_model_round_trip_needs_no_embedder(tmp_path: Path) -> None:
    vocab = load_tokenizer().get_vocab_size()
    rng = np.random.default_rng(2)
    encoder = StaticEncoder(
        table=rng.integers(-127, 128, (vocab, 4)).astype(np.int8), scales=np.full(vocab, 0.01, np.float32)
    )
    model = _static_model(encoder)
    model.save(tmp_path / "s.npz")
    loaded = read_model(tmp_path / "s.npz")
    assert isinstance(loaded, StaticClassifier) and isinstance(loaded.linear, LinearClassifier)
    assert not isinstance(loaded, EmbeddingClassifier)  # the gateway scores it inline, not in a thread
    for text in ("Add 3 and 4 apples.", "Write a poem about the sea."):
        assert loaded.score(user_messages(text)).value == pytest.approx(model.score(user_messages(text)).value)
    fields = dict(np.load(tmp_path / "s.npz"))
    fields["static_scales"] = fields["static_scales"][:-1]
    np.savez(tmp_path / "bad.npz", **fields)
    with pytest.raises(ModelFileError, match="static embedding table"):
        read_model(tmp_path / "bad.npz")
