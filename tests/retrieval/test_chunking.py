"""Loaders keep structure; the chunker respects budgets, keeps heading paths and gives stable ids."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

from retrieval import ChunkingConfig, DocumentError, MiniLMEncoder
from retrieval.chunking import chunk_blocks
from retrieval.loaders import load_blocks
from retrieval.tokens import approx_token_counts


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


MARKDOWN = """---
product: freight
---
# Guide

Intro paragraph.

## Setup
First step. Second step.

```python
# not a heading
print("x")
```

Subtitle
--------
Under a setext heading.
"""


def test_markdown_headings_fences_and_front_matter(tmp_path: Path) -> None:
    blocks = load_blocks(_write(tmp_path, "g.md", MARKDOWN))
    assert [(b.headings, b.text.splitlines()[0]) for b in blocks] == [
        (("Guide",), "Intro paragraph."),
        (("Guide", "Setup"), "First step. Second step."),
        (("Guide", "Setup"), "```python"),
        (("Guide", "Subtitle"), "Under a setext heading."),
    ]
    assert all(b.metadata == {"product": "freight"} for b in blocks)


def test_html_visible_text_under_headings(tmp_path: Path) -> None:
    html = (
        "<html><head><title>T</title><style>p{}</style></head><body><h1>Docs</h1><p>One &amp; two.</p>"
        "<script>alert(1)</script><h2>Limits</h2><ul><li>60 per minute</li><li>600 per minute</li></ul></body></html>"
    )
    blocks = load_blocks(_write(tmp_path, "d.html", html))
    assert [(b.headings, b.text) for b in blocks] == [
        (("Docs",), "One & two."),
        (("Docs", "Limits"), "60 per minute"),
        (("Docs", "Limits"), "600 per minute"),
    ]


def test_json_and_jsonl_records_become_blocks_with_metadata(tmp_path: Path) -> None:
    records = [{"title": "A", "body": "Alpha text", "plan": "growth", "nested": {"x": 1}, "source": "crm"}]
    (block,) = load_blocks(_write(tmp_path, "r.json", json.dumps(records)))
    assert block.text == "Alpha text" and block.headings == ("A",)
    assert block.metadata == {"title": "A", "plan": "growth", "doc_source": "crm"}
    lines = '{"content": "one", "n": 1}\n\n{"text": "two", "n": 2}\n'
    assert [(b.text, b.metadata["n"]) for b in load_blocks(_write(tmp_path, "r.jsonl", lines))] == [
        ("one", 1),
        ("two", 2),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", '{"text": "x",', "invalid JSON at line 1"),
        ("bad.jsonl", '{"text": "ok"}\n{oops}\n', "invalid JSON on line 2"),
        ("nofield.jsonl", '{"title": "no text"}\n', "line 1: no string field named text / content / body"),
        ("latin1.md", b"caf\xe9", "not UTF-8 text"),
        ("notes.docx", "x", "unsupported file type"),
        ("broken.pdf", b"%PDF-1.4 this is not a pdf", "unreadable PDF"),
    ],
)
def test_malformed_files_raise_document_error_naming_the_file(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = _write(tmp_path, name, content)
    with pytest.raises(DocumentError) as caught:
        load_blocks(path)
    assert caught.value.path == str(path) and message in caught.value.reason


def _minimal_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one Helvetica text line per page, xref offsets computed."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R "
            f"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    return out + f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()


def test_pdf_text_per_page(tmp_path: Path) -> None:
    blocks = load_blocks(_write(tmp_path, "p.pdf", _minimal_pdf(["First page text", "Second page text"])))
    assert [(b.text, b.metadata["page"]) for b in blocks] == [("First page text", 1), ("Second page text", 2)]


LONG_SECTION = "# Manual\n\n## Limits\n\n" + "\n\n".join(
    " ".join(f"Sentence {p}.{s} explains one more detail about rate limits and retries." for s in range(5))
    for p in range(12)
)


def test_chunks_fit_the_budget_keep_headings_and_overlap(tmp_path: Path, encoder: MiniLMEncoder) -> None:
    config = ChunkingConfig(max_tokens=120, overlap_tokens=30)
    chunks = chunk_blocks(
        "m.md", load_blocks(_write(tmp_path, "m.md", LONG_SECTION)), encoder.count_tokens, config
    )
    assert len(chunks) > 3
    assert max(encoder.count_tokens([c.text for c in chunks])) <= config.max_tokens
    assert all(
        c.text.startswith("Manual > Limits\n\n") and c.metadata["headings"] == "Manual > Limits"
        for c in chunks
    )
    assert [c.metadata["position"] for c in chunks] == list(range(len(chunks)))
    for previous, current in pairwise(chunks):
        last_sentence = previous.text.rsplit(". ", 1)[-1].strip()
        assert last_sentence in current.text  # the tail of one chunk opens the next


def test_oversized_sentence_is_split_into_windows(encoder: MiniLMEncoder) -> None:
    from retrieval.documents import Block

    chunks = chunk_blocks("w.txt", [Block("word " * 500)], encoder.count_tokens, ChunkingConfig(100, 10))
    assert len(chunks) >= 5
    assert max(encoder.count_tokens([c.text for c in chunks])) <= 100


def test_chunk_ids_are_stable_and_track_content(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.md", "# A\n\nalpha\n\n# B\n\nbeta\n\n# C\n\ngamma\n")
    first = [c.id for c in chunk_blocks("s.md", load_blocks(path), approx_token_counts)]
    again = [c.id for c in chunk_blocks("s.md", load_blocks(path), approx_token_counts)]
    other_source = [c.id for c in chunk_blocks("t.md", load_blocks(path), approx_token_counts)]
    path.write_text("# A\n\nalpha\n\n# B\n\nBETA changed\n\n# C\n\ngamma\n")
    edited = [c.id for c in chunk_blocks("s.md", load_blocks(path), approx_token_counts)]
    assert first == again and len(set(first)) == 3
    assert not set(first) & set(other_source)
    assert edited[0] == first[0] and edited[2] == first[2] and edited[1] != first[1]


def test_approximate_counts_are_close_to_wordpiece(encoder: MiniLMEncoder) -> None:
    corpus = Path(__file__).resolve().parents[2] / "retrieval" / "demo_corpus"
    texts = [p.read_text() for p in sorted(corpus.glob("*.md"))]
    exact, approx = sum(encoder.count_tokens(texts)), sum(approx_token_counts(texts))
    assert abs(approx - exact) / exact < 0.15
