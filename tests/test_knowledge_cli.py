"""Documents and the knowledge command line: Markdown, text and HTML in; search, stats and delete out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bus.cli import main
from knowledge.documents import UnsupportedDocument, html_to_markdown, read_document

PAGE = """<html><head><title>x</title><style>.a{}</style><script>var x = 1;</script></head>
<body><nav>Home | Pricing</nav>
<h1>Exporting data</h1><p>You can export a workspace as JSON.</p>
<h2>Export links</h2><p>Links expire after <b>7 days</b>.</p><ul><li>JSON</li><li>CSV</li></ul>
<footer>© Orbitly Labs</footer></body></html>"""


def test_html_becomes_markdown_without_chrome_or_scripts() -> None:
    markdown = html_to_markdown(PAGE)
    assert markdown.startswith("# Exporting data\n\nYou can export a workspace as JSON.\n\n## Export links")
    assert "Links expire after 7 days." in markdown
    assert "- JSON" in markdown
    for noise in ("var x", "Home | Pricing", "Orbitly Labs", ".a{}"):
        assert noise not in markdown


def test_documents_of_each_format_become_passages(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(PAGE)
    (tmp_path / "notes.txt").write_text("Plain notes.\n\nSecond paragraph.")
    (chunk, second) = read_document(tmp_path / "page.html", source="page.html")
    assert (chunk.title, second.heading) == ("Exporting data", "Export links")
    assert read_document(tmp_path / "notes.txt")[0].title == "notes"
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(UnsupportedDocument, match=r"unsupported format \.png"):
        read_document(tmp_path / "image.png")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UnsupportedDocument, match="not UTF-8"):
        read_document(tmp_path / "latin1.txt")


def test_hivewire_knowledge_ingests_searches_and_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "export.html").write_text(PAGE)
    (docs / "password.md").write_text("# Password\n\n## Reset link expired\n\nReset links last 60 minutes.\n")
    monkeypatch.setenv("HIVEWIRE_CHROMA_PATH", str(tmp_path / "chroma"))

    def hivewire(*args: str) -> tuple[int, str, str]:
        code = main(["knowledge", *args])
        out, err = capsys.readouterr()
        return code, out.strip(), err

    code, out, err = hivewire("ingest", str(docs), "--tenant", "acme")
    assert (code, out) == (0, "2 documents: 3 passages added, 0 removed, 0 unchanged")
    assert "[1/2] export.html: +2 -0 =0" in err
    assert (
        hivewire("ingest", str(docs), "--tenant", "acme")[1]
        == "2 documents: 0 passages added, 0 removed, 3 unchanged"
    )

    found = json.loads(hivewire("search", "how long does a reset link work", "--tenant", "acme", "--json")[1])
    assert found[0]["source"] == "password.md"
    assert found[0]["heading"] == "Reset link expired"
    assert json.loads(hivewire("search", "reset", "--tenant", "globex", "--json")[1]) == []

    assert hivewire("delete", "password.md", "--tenant", "acme")[1] == "removed 1 passages of password.md"
    code, _, err = hivewire("ingest", str(tmp_path / "nowhere"), "--tenant", "acme")
    assert code == 2
    assert "no such file or folder" in err

    # The installed command runs the same code in its own process.
    stats = subprocess.run(
        [sys.executable, "-m", "bus.cli", "knowledge", "stats", "--tenant", "acme"],
        env={**os.environ, "HIVEWIRE_CHROMA_PATH": str(tmp_path / "chroma")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stats.stdout.strip() == "acme/default: 2 passages from 1 documents"


def _pdf(lines: list[str], title: str) -> bytes:
    """A minimal one-page PDF with a text layer (what a PDF writer produces, built by hand)."""
    text = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {text} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({title}) >>".encode(),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_a_pdf_is_read_by_its_text_layer(tmp_path: Path) -> None:
    (tmp_path / "guide.pdf").write_bytes(
        _pdf(["Export links expire after 7 days.", "Imports take 50 MB."], "Data guide")
    )
    (chunk,) = read_document(tmp_path / "guide.pdf", source="guide.pdf")
    assert chunk.title == "Data guide"
    assert "Export links expire after 7 days." in chunk.text
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    with pytest.raises(UnsupportedDocument, match=r"not a readable PDF|no text layer"):
        read_document(tmp_path / "broken.pdf")
