"""The policy parts on their own: key files, tiers, the style schedule, the bandit, the request
policy's order of precedence."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from errors import ConfigurationError, ModelNotAllowed
from policy.adaptive_router import PRIORS, AdaptiveRouter
from policy.bandit import ModelBandit
from policy.classifier import QuestionClassifier
from policy.keys import ApiKeyRing, hash_key
from policy.request_policy import RequestPolicy
from policy.schedule import StyleSchedule
from policy.tiers import Tier, default_tiers
from settings import Settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    return path


def test_a_key_file_maps_keys_by_hash_or_in_clear_to_users_and_tiers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[[keys]]\nuser = "a"\ntier = "free"\nsha256 = "{hash_key("lsk_first-key-0123456")}"\n'
        '[[keys]]\nuser = "b"\ntier = "pro"\nkey = "lsk_second-key-0123456"\n',
    )

    ring = ApiKeyRing.from_file(path, default_tiers())
    first, second = ring.authenticate("lsk_first-key-0123456"), ring.authenticate("lsk_second-key-0123456")

    assert first is not None and (first.user_id, first.tier_name) == ("a", "free")
    assert second is not None and (second.user_id, second.tier_name) == ("b", "pro")
    assert ring.authenticate("lsk_first-key-012345") is None
    assert first.key_id == hash_key("lsk_first-key-0123456")[:12] and first.authenticated


@pytest.mark.parametrize(
    "text, complaint",
    [
        ('[[keys]]\nuser = "a"\ntier = "gold"\nkey = "lsk_0123456789abcdef"\n', "tier 'gold'"),
        ('[[keys]]\nuser = "a"\ntier = "free"\nkey = "short"\n', "16 characters"),
        ('[[keys]]\nuser = "a"\ntier = "free"\nsha256 = "abc"\n', "64 hex digits"),
        ('[[keys]]\ntier = "free"\nkey = "lsk_0123456789abcdef"\n', "needs a `user`"),
        ('[[keys]]\nuser = "a"\ntier = "free"\nkey = "lsk_0123456789abcdef"\n' * 2, "repeats"),
        ("[[keys]\n", "not valid TOML"),
        ("", "holds no \\[\\[keys\\]\\] entry"),  # would have run the server open
        ('[[key]]\nuser = "a"\ntier = "free"\nkey = "lsk_0123456789abcdef"\n', "unknown table or key \\['key'\\]"),
        ('[[keys]]\nuser = "a"\ntier = "free"\nkey = "lsk_0123456789abcdef"\nadmn = true\n', "unknown fields"),
        ("keys = []\n", "holds no"),
        ('[[keys]]\nuser = "a"\ntier = "free"\nkey = "lsk_0123456789abcdef"\ntags = "search"\n', "list of budget tags"),
        ('[[keys]]\nuser = "a"\ntier = "free"\nkey = "lsk_0123456789abcdef"\ntags = ["a b"]\n', "list of budget tags"),
    ],
)
def test_a_bad_key_file_says_what_to_fix(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        ApiKeyRing.from_file(write(tmp_path, text), default_tiers())


def test_a_missing_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        ApiKeyRing.from_file(tmp_path / "nope.toml", default_tiers())


def test_a_tier_must_include_its_default_and_only_known_models() -> None:
    with pytest.raises(ValidationError, match="default_model"):
        Tier(models=["local"], default_model="gpt4")
    with pytest.raises(ValidationError, match="one or more models"):
        Tier(models=[], default_model="auto")
    claude = {"free": {"models": ["claude"], "default_model": "claude"}}
    with pytest.raises(ValidationError, match=r"tiers\.free\.models: unknown alternatives \['claude'\]"):
        Settings(_env_file=None, tiers=claude, open_tier="free")


def test_settings_refuse_an_open_tier_that_does_not_exist() -> None:
    with pytest.raises(ValidationError, match="open_tier"):
        Settings(_env_file=None, open_tier="gold")


@pytest.mark.parametrize(
    "text, hour, style",
    [
        ("07-18=default,18-23=detailed,23-07=concise", 6, "concise"),
        ("07-18=default,18-23=detailed,23-07=concise", 23, "concise"),
        ("07-18=default,18-23=detailed,23-07=concise", 18, "detailed"),
        ("22-02=concise", 1, "concise"),
        ("22-02=concise", 2, "default"),
    ],
)
def test_the_style_schedule_covers_hour_ranges_across_midnight(text: str, hour: int, style: str) -> None:
    schedule = StyleSchedule.parse(text, "UTC")

    assert schedule.style_at(datetime(2026, 1, 1, hour, 30, tzinfo=UTC)) == style


def test_the_style_schedule_reads_the_clock_in_its_timezone() -> None:
    schedule = StyleSchedule.parse("09-18=detailed", "Asia/Seoul")

    assert schedule.style_at(datetime(2026, 1, 1, 1, 0, tzinfo=UTC)) == "detailed"  # 10:00 in Seoul
    assert schedule.style_at(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) == "default"  # 21:00 in Seoul


@pytest.mark.parametrize("text", ["9-18=loud", "nine-18=default", "07-25=default"])
def test_a_bad_style_schedule_says_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"HH-HH|hours run"):
        StyleSchedule.parse(text, "UTC")


def test_the_bandit_starts_on_the_preferred_model_and_leaves_it_when_it_fails() -> None:
    bandit = ModelBandit(exploration=0.0, rng=random.Random(1))
    priors = {"gpt4": 0.8, "openai": 0.7, "local": 0.5}

    first = bandit.choose("code", priors)
    for _ in range(5):
        bandit.observe("code", "gpt4", 0.0, prior=0.8)
    later = bandit.choose("code", priors)

    assert first.model == "gpt4" and not first.explored
    assert later.model == "openai"
    assert later.estimates["gpt4"] < later.estimates["openai"]


def test_the_bandit_explores_at_its_rate_and_forgets_old_evidence() -> None:
    bandit = ModelBandit(exploration=0.25, discount=0.9, rng=random.Random(3))
    priors = {"gpt4": 0.8, "openai": 0.7, "local": 0.5}

    remembers_all = ModelBandit(exploration=0.0, discount=1.0)
    explored = sum(bandit.choose("code", priors).explored for _ in range(2000)) / 2000
    for reward in [0.0] * 30 + [1.0] * 60:  # an outage, then recovery
        bandit.observe("math", "gpt4", reward, prior=0.8)
        remembers_all.observe("math", "gpt4", reward, prior=0.8)

    assert 0.22 < explored < 0.28
    assert bandit.choose("math", {"gpt4": 0.8}).estimate > 0.9, "recent successes outweigh the old outage"
    assert remembers_all.choose("math", {"gpt4": 0.8}).estimate < 0.7


def policy(now: datetime, **options: object) -> RequestPolicy:
    router = AdaptiveRouter(ModelBandit(exploration=0.0), ["openai", "gpt4", "gemini", "local"])
    return RequestPolicy(
        classifier=QuestionClassifier(),
        schedule=StyleSchedule.parse("07-18=default,18-23=detailed,23-07=concise", "UTC"),
        router=router,
        tiers=default_tiers(),
        open_tier="enterprise",
        clock=lambda: now,
        **options,  # type: ignore[arg-type]
    )


NIGHT = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
STAMPED_FREE = {
    "tier": "free",
    "access": {"models": ["local", "openai"], "default_model": "local", "explicit": ["llm_temperature"]},
}


def test_policy_fills_in_only_what_the_client_left_out() -> None:
    # LangServe fills in every id; "explicit" says the client sent only the temperature.
    configurable = {"llm_model": "openai", "prompt_style": "default", "llm_temperature": 1.2}

    decision = policy(NIGHT).decide("Write a poem about rain", configurable, STAMPED_FREE)

    assert decision.configurable == {"llm_model": "local", "prompt_style": "concise"}
    assert decision.routing["model_reason"] == "the free tier's default"
    assert decision.routing["temperature_reason"] == "set by the client"
    assert decision.routing["temperature"] == 1.2
    assert decision.routing["question_type"] == "creative"


def test_temperature_follows_the_question_type_and_complexity() -> None:
    decide = policy(NIGHT).decide
    simple_code = decide("fix this: def f(: pass", {}, {})
    long_story = decide(
        "Write a long story about a dragon. First describe the village in detail, then the journey, "
        "and finally compare the dragon's two friends. Make it funny and several pages long.",
        {},
        {},
    )

    assert simple_code.configurable["llm_temperature"] < long_story.configurable["llm_temperature"]
    assert long_story.routing["complexity"] == "complex"
    assert long_story.configurable["llm_temperature"] == 0.9  # creative 1.0, complex -0.1


def test_with_policy_off_style_and_temperature_are_left_to_the_chain() -> None:
    decision = policy(NIGHT, enabled=False).decide("What is DNS?", {}, {})

    assert set(decision.configurable) == {"llm_model"}
    assert decision.configurable["llm_model"] == "openai"  # the open tier's default


def test_a_model_above_the_tier_is_refused_naming_the_allowed_ones() -> None:
    stamped = {**STAMPED_FREE, "access": {**STAMPED_FREE["access"], "explicit": ["llm_model"]}}  # type: ignore[dict-item]

    with pytest.raises(ModelNotAllowed) as refused:
        policy(NIGHT).decide("hi", {"llm_model": "gpt4"}, stamped)

    assert refused.value.status == 403
    assert refused.value.details["allowed"] == ["local", "openai", "auto"]


def test_auto_picks_within_the_tier_from_the_preference_table() -> None:
    stamped = {**STAMPED_FREE, "access": {**STAMPED_FREE["access"], "explicit": ["llm_model"]}}  # type: ignore[dict-item]

    decision = policy(NIGHT).decide("Prove that the square root of 2 is irrational", {"llm_model": "auto"}, stamped)

    assert PRIORS["math"]["gpt4"] > PRIORS["math"]["openai"], "gpt4 would win, but the free tier lacks it"
    assert decision.configurable["llm_model"] == "openai"
    assert "math" in decision.routing["model_reason"]
