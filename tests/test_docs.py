"""Docs are generated from schemas/: the committed files must match what the code renders."""

from __future__ import annotations

from devtools.docs import DOCS, GENERATED
from schemas.marts import METRIC_MARTS


def test_generated_docs_are_current() -> None:
    for name, render in GENERATED.items():
        assert (DOCS / name).read_text() == render(), f"docs/{name} is stale: run `python -m devtools.docs`"


def test_every_mart_column_is_documented() -> None:
    text = (DOCS / "marts.md").read_text()
    for table in METRIC_MARTS:
        assert f"`marts.{table.name}`" in text
        for column in table.columns:
            assert column.comment.strip(), f"{table.name}.{column.name} has no comment"
            assert f"| `{column.name}` |" in text
