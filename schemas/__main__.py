"""Regenerate the checked-in JSON Schema files: ``python -m schemas``."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.article import Article

__all__ = ["SCHEMA_FILE", "render"]

SCHEMA_FILE = Path(__file__).with_name("article.schema.json")


def render() -> str:
    """The JSON Schema of the Kafka payload, as checked in."""
    schema = Article.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://newsflow.dev/schemas/article.schema.json"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
