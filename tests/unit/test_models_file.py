"""The models file: what it declares, and how a bad one is refused (file, line, what to fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from errors import ConfigurationError
from settings.models_file import load_models_file

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "models.example.toml"


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_example_loads_as_it_says() -> None:
    environ = {"OPENAI_API_KEY": "sk-a", "OPENAI_API_KEY_2": "sk-b", "OPENAI_API_KEY_3": "sk-c"}
    catalog = load_models_file(EXAMPLE, environ=environ)

    assert catalog.fallback_ladder == ["openai", "gpt4", "local"]
    openai, gpt4 = catalog.deployments["openai"], catalog.deployments["gpt4"]
    assert [(e.spec.endpoint, e.spec.weight, e.kind) for e in openai] == [
        ("openai-a", 1.0, "openai"),
        ("openai-b", 1.0, "openai"),
    ]
    assert [e.api_key.get_secret_value() if e.api_key else None for e in openai] == ["sk-a", "sk-b"]
    assert [(name, key.get_secret_value() if key else None) for name, key in openai[1].more_keys] == [
        ("OPENAI_API_KEY_3", "sk-c")
    ]
    assert [e.key_variable for e in openai[1].keyed()] == ["OPENAI_API_KEY_2", "OPENAI_API_KEY_3"]
    assert (openai[0].spec.requests_per_minute, openai[0].spec.context_window) == (500, 128000)
    azure, vllm = gpt4
    assert (azure.kind, azure.spec.provider, azure.api_version, azure.spec.price_key) == (
        "azure",
        "azure",
        "2024-10-21",
        "gpt-4o",
    )
    assert azure.api_key is None, "its variable is unset here: it fails as not configured"
    assert (vllm.key_variable, vllm.spec.capabilities, vllm.spec.weight) == (None, frozenset(), 0.25)
    assert dict(catalog.new_alternatives) == {"groq": ["pro", "enterprise"]}
    assert [e.spec.model for e in catalog.deployments["groq"]] == ["llama-3.3-70b-versatile"]


def test_without_a_file_nothing_is_declared() -> None:
    catalog = load_models_file(None)
    assert (dict(catalog.deployments), catalog.fallback_ladder) == ({}, None)


@pytest.mark.parametrize(
    ("text", "told"),
    [
        (
            "[[deployments]]\nalternative = 'openai'\nkind = 'openai'\nmodel = 'm'\nweight = 0\n",
            ":1: deployments.0.weight",
        ),
        (
            "[ladders]\nfallback = ['openai']\n\n"
            "[[deployments]]\nalternative = 'openai'\nkind = 'openai'\nmodel = 'a'\n\n"
            "[[deployments]]\nalternative = 'mistral'\nkind = 'openai'\nmodel = 'b'\n",
            ":9: deployments.1.alternative: unknown alternative 'mistral'",
        ),
        ("[[deployments]]\nalternative = 'gpt4'\nkind = 'azure'\nmodel = 'm'\n", "needs base_url"),
        (
            "[[deployments]]\nalternative = 'openai'\nkind = 'openai'\nmodel = 'm'\napi_key_env = 'sk-proj-abc123'\n",
            "the name of the environment variable holding the key, not the key itself",
        ),
        (
            "[[deployments]]\nalternative = 'openai'\nkind = 'openai'\nmodel = 'm'\ncolour = 'red'\n",
            "deployments.0.colour",
        ),
        ("[ladders]\nfallback = ['openai', 'openai']\n", ":1: ladders.fallback: give one or more different"),
        ("[[deployments]\n", "not valid TOML"),
        (
            "[[deployments]]\nalternative = 'openai'\nkind = 'openai'\nmodel = 'm'\n"
            "[[deployments]]\nalternative = 'openai'\nkind = 'openai'\nmodel = 'm'\n",
            ":5: deployments.1.name: 'openai:m' is the name of deployment 0 too",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_the_line_and_what_to_fix(tmp_path: Path, text: str, told: str) -> None:
    path = written(tmp_path, text)

    with pytest.raises(ConfigurationError) as refused:
        load_models_file(path, environ={})

    assert str(path) in str(refused.value)
    assert told in str(refused.value)
