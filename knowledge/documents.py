"""Reading documents: Markdown, plain text, HTML and PDF files (and folders of them) into passages."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from knowledge.chunking import Chunk, chunk_markdown, chunk_text
from knowledge.errors import KnowledgeError

__all__ = ["SUPPORTED", "UnsupportedDocument", "document_files", "html_to_markdown", "read_document"]

SUPPORTED = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf")


class UnsupportedDocument(KnowledgeError):
    """A file Hivewire cannot read as a document."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def document_files(root: Path) -> Iterator[Path]:
    """``root`` itself if it is a file, else every supported file under it, in a stable order."""
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        raise UnsupportedDocument(str(root), "no such file or folder")
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in SUPPORTED and not path.name.startswith("."):
            yield path


def read_document(path: Path, *, source: str | None = None) -> list[Chunk]:
    """The passages of one file; ``source`` names it in metadata (default: the path as given).

    Raises:
        UnsupportedDocument: not a supported format, or not UTF-8 text.
    """
    name = source or str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise UnsupportedDocument(
            name, f"unsupported format {suffix or '(none)'}; supported: {', '.join(SUPPORTED)}"
        )
    if suffix == ".pdf":
        return _read_pdf(path, name)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UnsupportedDocument(name, f"not UTF-8 text ({exc.reason})") from None
    if suffix in (".md", ".markdown"):
        return chunk_markdown(text, source=name)
    if suffix == ".txt":
        return chunk_text(text, source=name)
    return chunk_markdown(html_to_markdown(text), source=name)


def _read_pdf(path: Path, source: str) -> list[Chunk]:
    """A PDF's text, page by page, as plain-text passages titled by its metadata or file name."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata is not None else None
    except (PdfReadError, OSError, ValueError) as exc:
        raise UnsupportedDocument(source, f"not a readable PDF ({exc})") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise UnsupportedDocument(source, "the PDF has no text layer (scanned pages need OCR first)")
    return chunk_text(text, source=source, title=title or None)


def html_to_markdown(html: str) -> str:
    """The readable text of an HTML page, headings as Markdown headings, paragraphs apart."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return parser.markdown()


class _Text(HTMLParser):
    _SKIP = frozenset({"head", "script", "style", "nav", "footer", "header", "noscript", "template", "svg"})
    _BLOCK = frozenset(
        {
            "p",
            "div",
            "section",
            "article",
            "li",
            "ul",
            "ol",
            "table",
            "tr",
            "br",
            "pre",
            "blockquote",
            "dd",
            "dt",
        }
    )
    _HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._blocks: list[str] = []
        self._current: list[str] = []
        self._skipping = 0
        self._heading: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._HEADINGS:
            self._flush()
            self._heading = self._HEADINGS[tag]
        elif tag in self._BLOCK:
            self._flush()
            if tag == "li":
                self._current.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._HEADINGS or tag in self._BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._current.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        self._current.clear()
        if text and text != "-":
            self._blocks.append(("#" * self._heading + " " + text) if self._heading else text)
        self._heading = None

    def markdown(self) -> str:
        self._flush()
        return "\n\n".join(self._blocks) + "\n"
