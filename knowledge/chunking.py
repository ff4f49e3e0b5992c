"""Splitting documents into passages: heading-aware, paragraph-respecting, with overlap.

A passage never spans two sections: it starts inside one heading and carries
that heading's path ("Billing > Invoices") as metadata and as its first line,
so both the embedding and a reader know what it is about. Within a section,
whole paragraphs are packed up to ``max_chars``; a paragraph longer than that
is split between sentences. Consecutive passages of one section overlap by up
to ``overlap`` characters (whole sentences), so an answer that straddles a
boundary is still found whole in one of them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["Chunk", "chunk_markdown", "chunk_text", "content_id"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One passage of a document.

    Attributes:
        id: a hash of the source and the passage's text: unchanged content keeps its id.
        text: the passage, its heading path on the first line.
        source: the document it came from (a path or URL).
        title: the document's title (its first heading, else the file name).
        heading: the heading path of the section ("" for text before any heading).
        position: the passage's index within the document.
    """

    id: str
    text: str
    source: str
    title: str
    heading: str
    position: int


def content_id(source: str, text: str) -> str:
    """The id of a passage: the same text from the same source always has the same id."""
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:32]


def chunk_markdown(
    markdown: str, *, source: str, title: str | None = None, max_chars: int = 1200, overlap: int = 200
) -> list[Chunk]:
    """Split a Markdown document into passages (see the module docstring)."""
    sections = _sections(markdown)
    doc_title = title or next((path[0] for path, _ in sections if path), "") or _stem(source)
    chunks: list[Chunk] = []
    for path, paragraphs in sections:
        # The document title is every passage's context already; don't repeat it in the path.
        shown = path[1:] if path and path[0] == doc_title else path
        heading = " > ".join(shown)
        for body in _pack(paragraphs, max_chars=max_chars, overlap=overlap):
            text = f"{heading}\n\n{body}" if heading else body
            chunks.append(
                Chunk(
                    id=content_id(source, text),
                    text=text,
                    source=source,
                    title=doc_title,
                    heading=heading,
                    position=len(chunks),
                )
            )
    return chunks


def chunk_text(
    text: str, *, source: str, title: str | None = None, max_chars: int = 1200, overlap: int = 200
) -> list[Chunk]:
    """Split plain text (no headings) into passages of whole paragraphs."""
    escaped = "\n".join(
        ("\\" + line) if line.lstrip().startswith("#") else line for line in text.splitlines()
    )
    return chunk_markdown(
        escaped, source=source, title=title or _stem(source), max_chars=max_chars, overlap=overlap
    )


def _sections(markdown: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(heading path, paragraphs) for each section, in document order; empty sections dropped."""
    sections: list[tuple[tuple[str, ...], list[str]]] = []
    path: list[tuple[int, str]] = []
    paragraphs: list[str] = []
    lines: list[str] = []
    in_fence = False

    def end_paragraph() -> None:
        if lines:
            paragraphs.append("\n".join(lines).strip())
            lines.clear()

    def end_section() -> None:
        end_paragraph()
        if any(p for p in paragraphs):
            sections.append((tuple(text for _, text in path), [p for p in paragraphs if p]))
        paragraphs.clear()

    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            lines.append(line)
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            end_section()
            level = len(heading.group(1))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, heading.group(2).strip()))
        elif not line.strip() and not in_fence:
            end_paragraph()
        else:
            lines.append(line.removeprefix("\\"))
    end_section()
    return sections


def _pack(paragraphs: list[str], *, max_chars: int, overlap: int) -> list[str]:
    pieces: list[str] = []
    for paragraph in paragraphs:
        pieces.extend([paragraph] if len(paragraph) <= max_chars else _split_long(paragraph, max_chars))
    bodies: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        if current and size + len(piece) + 2 > max_chars:
            bodies.append("\n\n".join(current))
            tail = _tail(current[-1], overlap)
            current, size = ([tail], len(tail)) if tail else ([], 0)
        current.append(piece)
        size += len(piece) + 2
    if current:
        bodies.append("\n\n".join(current))
    return bodies


def _split_long(paragraph: str, max_chars: int) -> list[str]:
    sentences = _SENTENCE_END.split(paragraph)
    parts: list[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > max_chars:  # a "sentence" with no breaks at all: cut it
            if current:
                parts.append(current)
                current = ""
            parts.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if current and len(current) + 1 + len(sentence) > max_chars:
            parts.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        parts.append(current)
    return parts


def _tail(text: str, overlap: int) -> str:
    """The last whole sentences of ``text`` that fit in ``overlap`` characters."""
    if overlap <= 0:
        return ""
    tail = ""
    for sentence in reversed(_SENTENCE_END.split(text)):
        candidate = f"{sentence} {tail}".strip()
        if len(candidate) > overlap:
            break
        tail = candidate
    return tail


def _stem(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0].replace("-", " ").replace("_", " ").strip() or source
