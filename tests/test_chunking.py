"""Chunking: passages follow headings and paragraphs, overlap a little, and keep stable ids."""

from __future__ import annotations

import itertools

from knowledge.chunking import chunk_markdown, chunk_text, content_id

ARTICLE = """# Resetting your password

If you forgot your password, you can reset it from the sign-in page.

## Request a reset link

1. Open the sign-in page.
2. Click **Forgot password**.

The link arrives within five minutes.

## Reset link expired

Links expire after 30 minutes. Request a new one.

### On mobile

Open the link on the same device.
"""


def test_passages_follow_sections_and_carry_their_heading_path() -> None:
    chunks = chunk_markdown(ARTICLE, source="kb/password.md")
    assert [c.heading for c in chunks] == [
        "",
        "Request a reset link",
        "Reset link expired",
        "Reset link expired > On mobile",
    ]
    assert all(c.title == "Resetting your password" for c in chunks)
    assert chunks[1].text == (
        "Request a reset link\n\n1. Open the sign-in page.\n2. Click **Forgot password**.\n\n"
        "The link arrives within five minutes."
    )
    assert [c.position for c in chunks] == [0, 1, 2, 3]
    assert chunks[0].text == "If you forgot your password, you can reset it from the sign-in page."


def test_ids_depend_on_content_only() -> None:
    first = chunk_markdown(ARTICLE, source="kb/password.md")
    again = chunk_markdown(ARTICLE, source="kb/password.md")
    edited = chunk_markdown(ARTICLE.replace("30 minutes", "60 minutes"), source="kb/password.md")
    assert [c.id for c in first] == [c.id for c in again]
    changed = {c.id for c in edited} - {c.id for c in first}
    assert len(changed) == 1
    assert first[0].id == content_id("kb/password.md", first[0].text)
    assert chunk_markdown(ARTICLE, source="kb/other.md")[0].id != first[0].id


def test_long_sections_split_between_paragraphs_with_overlap() -> None:
    paragraphs = [f"Paragraph {i} says something useful. It has a second sentence." for i in range(30)]
    doc = "# Long\n\n## Section\n\n" + "\n\n".join(paragraphs)
    chunks = chunk_markdown(doc, source="long.md", max_chars=400, overlap=80)
    assert len(chunks) > 3
    assert all(len(c.text) <= 400 + len("Section\n\n") for c in chunks)
    for before, after in itertools.pairwise(chunks):
        # The next passage starts with the previous one's last sentences.
        assert before.text.endswith(after.text.split("\n\n")[1])
    body = "\n\n".join(c.text.split("\n\n", 1)[1] for c in chunks)
    assert all(p.split(" says")[0] in body for p in paragraphs)


def test_a_paragraph_longer_than_a_passage_splits_between_sentences() -> None:
    sentence = "This sentence is exactly long enough to matter here."
    doc = "# T\n\n" + " ".join([sentence] * 40)
    chunks = chunk_markdown(doc, source="t.md", max_chars=300, overlap=0)
    assert all(c.text.endswith(".") for c in chunks)
    assert all(len(c.text) <= 300 for c in chunks)


def test_code_fences_are_not_headings() -> None:
    doc = "# API\n\n## Example\n\n```sh\n# not a heading\ncurl https://api\n```\n"
    (chunk,) = chunk_markdown(doc, source="api.md")
    assert chunk.heading == "Example"
    assert "# not a heading" in chunk.text


def test_plain_text_is_split_by_paragraphs_and_titled_by_its_file() -> None:
    chunks = chunk_text(
        "First paragraph.\n\n# not a heading in plain text\n\nThird.", source="notes/release-notes.txt"
    )
    assert chunks[0].title == "release notes"
    assert "# not a heading in plain text" in chunks[0].text
