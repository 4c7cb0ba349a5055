"""Read .md, .txt, .html, .pdf, .json and .jsonl files into blocks.

Each loader keeps the document's structure (headings, paragraphs, pages,
records) because the chunker splits along it. Any problem with one file is a
:class:`~retrieval.errors.DocumentError` naming that file, so ingestion can
report it and go on with the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from retrieval.documents import RESERVED_KEYS, Block, Scalar
from retrieval.errors import DocumentError

_ATX_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT_UNDERLINE = re.compile(r"^(=+|-+)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_FRONT_MATTER_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")
_TEXT_FIELDS = ("text", "content", "body")


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(path, f"not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise DocumentError(path, f"cannot read: {exc.strerror}") from exc


def _paragraphs(text: str) -> Iterator[str]:
    for part in re.split(r"\n\s*\n", text):
        if part.strip():
            yield part.strip()


def _front_matter(text: str) -> tuple[dict[str, Scalar], str]:
    """Split simple ``key: value`` front matter (between ``---`` lines) from the body."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 4)
    if end < 0:
        return {}, text
    fields: dict[str, Scalar] = {}
    for line in text[4:end].splitlines():
        match = _FRONT_MATTER_LINE.match(line)
        if match and match[1] not in RESERVED_KEYS:
            fields[match[1]] = match[2].strip("\"'")
    return fields, text[end + 5 :]


def load_markdown(path: Path) -> list[Block]:
    """ATX and setext headings set the heading path; blank lines end paragraphs; fences stay whole."""
    metadata, text = _front_matter(_read_text(path))
    blocks: list[Block] = []
    headings: tuple[str, ...] = ()
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        if any(line.strip() for line in lines):
            blocks.append(Block("\n".join(lines).strip(), headings, metadata))
        lines.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            lines.append(line)
        elif in_fence:
            lines.append(line)
        elif heading := _ATX_HEADING.match(line):
            flush()
            level = len(heading[1])
            headings = (*headings[: level - 1], heading[2])
        elif _SETEXT_UNDERLINE.match(line) and len(lines) == 1 and lines[0].strip():
            level = 1 if line.lstrip().startswith("=") else 2
            headings = (*headings[: level - 1], lines.pop().strip())
        elif not line.strip():
            flush()
        else:
            lines.append(line)
    flush()
    return blocks


def load_text(path: Path) -> list[Block]:
    """Plain text has no headings: one block per paragraph."""
    return [Block(p) for p in _paragraphs(_read_text(path))]


class _HTMLBlocks(HTMLParser):
    """Collects text per block element, tracking h1-h6 as the heading path."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg"})
    _BLOCK = frozenset(
        {
            "p",
            "div",
            "li",
            "ul",
            "ol",
            "tr",
            "table",
            "pre",
            "blockquote",
            "section",
            "article",
            "main",
            "header",
            "footer",
            "aside",
            "nav",
            "dl",
            "dt",
            "dd",
            "figcaption",
            "br",
            "hr",
            "body",
        }
    )
    _HEADING = {f"h{n}": n for n in range(1, 7)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._headings: tuple[str, ...] = ()
        self._buffer: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0
        self._heading_level = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag in self._HEADING or tag in self._BLOCK:
            self._flush()
            self._heading_level = self._HEADING.get(tag, self._heading_level)
            self._pre_depth += tag == "pre"
        elif tag in ("td", "th"):
            self._buffer.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in self._HEADING and self._heading_level:
            title = " ".join("".join(self._buffer).split())
            self._buffer.clear()
            if title:
                self._headings = (*self._headings[: self._heading_level - 1], title)
            self._heading_level = 0
        elif tag in self._BLOCK:
            self._flush()
            self._pre_depth = max(0, self._pre_depth - (tag == "pre"))

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        if self._heading_level:
            return
        raw = "".join(self._buffer)
        self._buffer.clear()
        text = raw.strip("\n") if self._pre_depth else " ".join(raw.split())
        if text.strip():
            self.blocks.append(Block(text, self._headings))


def load_html(path: Path) -> list[Block]:
    """Visible text of block elements; headings become the heading path."""
    parser = _HTMLBlocks()
    parser.feed(_read_text(path))
    parser.close()
    return parser.blocks


def load_pdf(path: Path) -> list[Block]:
    """Text per page (pypdf); the page number goes into each block's metadata."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as exc:
        raise DocumentError(path, "reading PDF needs the pypdf package (pip install pypdf)") from exc
    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(path, f"unreadable PDF: {exc}") from exc
    return [Block(p, (), {"page": number}) for number, text in enumerate(pages, 1) for p in _paragraphs(text)]


def _record_block(path: Path, record: Any, where: str) -> Block:
    """One JSON object: its text field becomes the block, other scalars its metadata."""
    if not isinstance(record, dict):
        raise DocumentError(path, f"{where}: expected an object, got {type(record).__name__}")
    field = next((f for f in _TEXT_FIELDS if isinstance(record.get(f), str)), None)
    if field is None:
        raise DocumentError(path, f"{where}: no string field named {' / '.join(_TEXT_FIELDS)}")
    metadata: dict[str, Scalar] = {}
    for key, value in record.items():
        if key != field and isinstance(value, str | int | float | bool):
            metadata[f"doc_{key}" if key in RESERVED_KEYS else key] = value
    title = metadata.get("title")
    return Block(record[field].strip(), (str(title),) if title else (), metadata)


def load_json(path: Path) -> list[Block]:
    """One object, or an array of objects, each a record."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DocumentError(path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    records = data if isinstance(data, list) else [data]
    return [b for i, r in enumerate(records) if (b := _record_block(path, r, f"record {i}")).text]


def load_jsonl(path: Path) -> list[Block]:
    """One object per non-blank line."""
    blocks = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DocumentError(path, f"invalid JSON on line {number}: {exc.msg}") from exc
        if (block := _record_block(path, record, f"line {number}")).text:
            blocks.append(block)
    return blocks


LOADERS: dict[str, Callable[[Path], list[Block]]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".json": load_json,
    ".jsonl": load_jsonl,
}


def load_blocks(path: Path) -> list[Block]:
    """Dispatch on the file suffix; unknown suffixes are a DocumentError."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise DocumentError(path, f"unsupported file type {path.suffix or '(none)'!r}")
    return loader(path)
