import json

from jsonschema import Draft202012Validator

from schemas import SCHEMA_VERSION, Article
from schemas.__main__ import SCHEMA_FILE, render


def test_checked_in_schema_matches_the_model() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "schemas/article.schema.json is stale: run `python -m schemas` and commit it"
    )


def test_schema_version_literal_matches_constant() -> None:
    assert Article.model_fields["schema_version"].default == SCHEMA_VERSION


def test_a_serialised_article_validates_against_the_checked_in_schema(
    sample_article: Article,
) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    payload = json.loads(sample_article.model_dump_json())
    assert list(validator.iter_errors(payload)) == []
    payload["unexpected"] = 1
    assert list(validator.iter_errors(payload)), "extra fields must be rejected"
