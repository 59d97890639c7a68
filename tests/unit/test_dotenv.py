""".env reaches the environment, so the variables the SDKs read themselves work from it. (LangSmith
tracing from it, against a real server process: ``tests/system/test_dotenv.py``.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from settings import SDK_VARIABLES, Settings, env_example, load_env_file


@pytest.fixture
def environ() -> Iterator[None]:
    """``os.environ`` as it was, back after the test: ``load_env_file`` writes to it directly."""
    with mock.patch.dict(os.environ):
        for name in ("OPENAI_ORG_ID", "LANGSMITH_PROJECT", "LLM_SERVER_OPENAI_MODEL"):
            os.environ.pop(name, None)
        yield


def test_env_file_values_reach_the_environment_and_the_settings_built_after(
    environ: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "OPENAI_ORG_ID=org-from-dotenv\nLANGSMITH_PROJECT=from-dotenv\nLLM_SERVER_OPENAI_MODEL=gpt-from-dotenv\n"
    )
    monkeypatch.chdir(tmp_path)

    assert load_env_file() is True

    assert os.environ["OPENAI_ORG_ID"] == "org-from-dotenv"
    assert os.environ["LANGSMITH_PROJECT"] == "from-dotenv"
    assert Settings(_env_file=None).openai_model == "gpt-from-dotenv"  # through the environment, not the file


def test_variables_already_set_win_over_the_env_file(
    environ: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("OPENAI_ORG_ID=org-from-dotenv\nLLM_SERVER_OPENAI_MODEL=gpt-from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    os.environ["OPENAI_ORG_ID"] = "org-from-shell"
    os.environ["LLM_SERVER_OPENAI_MODEL"] = "gpt-from-shell"

    load_env_file()

    assert os.environ["OPENAI_ORG_ID"] == "org-from-shell"
    assert Settings(_env_file=None).openai_model == "gpt-from-shell"


def test_loading_again_keeps_what_the_process_set_since(
    environ: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """main() loads .env, may set variables for its workers, and create_app() loads it again."""
    (tmp_path / ".env").write_text("OPENAI_ORG_ID=org-from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    load_env_file()
    os.environ["OPENAI_ORG_ID"] = "org-set-by-main"

    load_env_file()

    assert os.environ["OPENAI_ORG_ID"] == "org-set-by-main"


def test_a_missing_env_file_is_fine(environ: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = dict(os.environ)

    assert load_env_file() is False
    assert dict(os.environ) == before


def test_only_the_env_file_of_the_working_directory_is_read(
    environ: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As pydantic-settings reads it: not one in a parent folder."""
    (tmp_path / ".env").write_text("OPENAI_ORG_ID=org-from-the-parent-folder\n")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")

    assert load_env_file() is False
    assert "OPENAI_ORG_ID" not in os.environ


def test_env_example_lists_the_variables_the_sdks_read_themselves() -> None:
    example = env_example()

    for name in ("LANGSMITH_TRACING", "LANGSMITH_API_KEY", "LANGSMITH_PROJECT", "LANGSMITH_ENDPOINT"):
        assert any(v.name == name for v in SDK_VARIABLES)
        assert f"\n# {name}=" in example
    assert "\n# LANGSMITH_TRACING=false\n" in example


# LangSmith tracing from .env, in a real server process.
