"""Settings: one class, documented in .env.example, read from the SDKs' own variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings import Settings, env_example
from tests.helpers.processes import ROOT


def test_env_example_is_generated_from_the_settings_class() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), "run: python -m settings > .env.example"


def test_provider_settings_use_the_sdks_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.local/v1")
    monkeypatch.setenv("GOOGLE_API_KEY", "g-from-env")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://gemini.local")
    monkeypatch.setenv("GEMINI_API_VERSION", "v1")
    monkeypatch.setenv("LLM_SERVER_OPENAI_MODEL", "gpt-4.1-mini")

    settings = Settings(_env_file=None)

    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == "sk-from-env"
    assert settings.openai_base_url == "http://proxy.local/v1"
    assert settings.google_api_key is not None and settings.google_api_key.get_secret_value() == "g-from-env"
    assert (settings.google_gemini_base_url, settings.gemini_api_version) == ("http://gemini.local", "v1")
    assert settings.openai_model == "gpt-4.1-mini"


def test_a_blank_key_means_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "  ")

    assert Settings(_env_file=None).openai_api_key is None


def test_keys_never_show_in_the_settings_repr() -> None:
    settings = Settings(_env_file=None, openai_api_key="sk-secret-value-123")

    assert "sk-secret-value-123" not in repr(settings)


def test_out_of_range_settings_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="default_temperature"):
        Settings(_env_file=None, default_temperature=3)


def test_the_bundled_local_model_is_found_without_importing_its_package() -> None:
    path = Settings(_env_file=None).resolved_local_model_path()

    assert path is not None and path.suffix == ".gguf" and path.is_file()


def test_an_empty_optional_path_or_url_turns_the_feature_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_SERVER_SLOW_LOG_PATH", "")
    monkeypatch.setenv("LLM_SERVER_ALERT_WEBHOOK_URL", " ")

    settings = Settings(_env_file=None)

    assert settings.slow_log_path is None
    assert settings.alert_webhook_url is None


def test_list_settings_take_comma_separated_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_SERVER_ALERT_EMAIL_TO", "ops@example.com, oncall@example.com")

    assert Settings(_env_file=None).alert_email_to == ["ops@example.com", "oncall@example.com"]
