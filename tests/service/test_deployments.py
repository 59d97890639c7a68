"""One alternative served by several deployments from a models file (issue 18): two provider
doubles on their own ports as two OpenAI-compatible endpoints, through the real OpenAI SDK. The
balancer's shuffle is seeded and the breakers run on a fake clock (``tests.helpers.resilient``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.provider_double import Behaviour, ProviderDouble
from tests.helpers.resilient import PRIMARY, Made, breaker_state

KEY_A, KEY_B = "TEST_DEPLOYMENT_KEY_A", "TEST_DEPLOYMENT_KEY_B"
QUESTION = {"input": {"question": "What is a load balancer?"}}
# A primary timeout these tests are not about: on a loaded machine 1 s can pass before an answer,
# and a timeout would move a request to another deployment.
SLACK = {"primary_timeout_s": 10}


@pytest.fixture(scope="module")
def endpoints() -> Iterator[tuple[ProviderDouble, ProviderDouble]]:
    """Two more doubles: the deployments ``a`` and ``b`` of the ``openai`` alternative."""
    a, b = ProviderDouble(), ProviderDouble()
    a.start()
    b.start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def deployments(
    endpoints: tuple[ProviderDouble, ProviderDouble], monkeypatch: pytest.MonkeyPatch
) -> tuple[ProviderDouble, ProviderDouble]:
    for double in endpoints:
        double.reset()
    monkeypatch.setenv(KEY_A, "sk-test-deployment-a-0123456789")
    monkeypatch.setenv(KEY_B, "sk-test-deployment-b-0123456789")
    return endpoints


def models_file(tmp_path: Path, a: ProviderDouble, b: ProviderDouble, **extra: str) -> Path:
    """``openai`` served by ``a`` and ``b``; ``extra``: more lines for each (``for_a=...``)."""
    text = '[ladders]\nfallback = ["openai", "local"]\n'
    for name, double, key in (("a", a, KEY_A), ("b", b, KEY_B)):
        more = extra.get(f"for_{name}", "")
        text += (
            f'\n[[deployments]]\nalternative = "openai"\nname = "{name}"\nkind = "openai"\n'
            f'base_url = "{double.url}/v1"\napi_key_env = "{key}"\nmodel = "{PRIMARY}"\n{more}\n'
        )
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def ask(client: httpx.AsyncClient, times: int, question: dict = QUESTION) -> list[httpx.Response]:
    return [await client.post("/fallback/invoke", json=question) for _ in range(times)]


async def test_equal_weights_share_the_traffic_within_ten_percent(
    make_resilient: Callable[..., Made], deployments: tuple[ProviderDouble, ProviderDouble], tmp_path: Path
) -> None:
    a, b = deployments
    _, client, _ = make_resilient(**SLACK, models_file=models_file(tmp_path, a, b))

    answers = await ask(client, 200)

    assert {r.status_code for r in answers} == {200}
    served_a, served_b = len(a.requests_for(PRIMARY)), len(b.requests_for(PRIMARY))
    assert served_a + served_b == 200
    assert abs(served_a - served_b) <= 20, (served_a, served_b)


async def test_weights_set_the_shares(
    make_resilient: Callable[..., Made], deployments: tuple[ProviderDouble, ProviderDouble], tmp_path: Path
) -> None:
    a, b = deployments
    _, client, _ = make_resilient(**SLACK, models_file=models_file(tmp_path, a, b, for_a="weight = 3"))

    await ask(client, 200)

    assert 130 <= len(a.requests_for(PRIMARY)) <= 170, "about three quarters"


async def test_a_down_deployment_costs_no_request_is_skipped_once_its_breaker_opens_and_is_back_after_the_probe(
    make_resilient: Callable[..., Made], deployments: tuple[ProviderDouble, ProviderDouble], tmp_path: Path
) -> None:
    a, b = deployments
    _, client, fake = make_resilient(
        **SLACK, models_file=models_file(tmp_path, a, b), breaker_consecutive_failures=3, breaker_open_s=30
    )
    a.set(PRIMARY, Behaviour(fail_status=503))

    answers = await ask(client, 40)

    assert {r.status_code for r in answers} == {200}, "the other deployment answers every one"
    assert {r.headers["x-served-by"] for r in answers} == {PRIMARY}
    assert {r.headers["x-fallback-rung"] for r in answers} == {"0"}, "the alternative's own rung, not local"
    assert len(a.requests_for(PRIMARY)) == 3, "tried until its breaker opened, then skipped"
    assert await breaker_state(client, "a") == "open"
    assert await breaker_state(client, "b") == "closed"

    a.set(PRIMARY, Behaviour())
    fake.now += 31
    await ask(client, 20)

    assert await breaker_state(client, "a") == "closed"
    assert len(a.requests_for(PRIMARY)) > 3 + 1, "traffic again after the probe"


async def test_a_deployment_at_its_requests_per_minute_passes_its_traffic_to_the_other(
    make_resilient: Callable[..., Made], deployments: tuple[ProviderDouble, ProviderDouble], tmp_path: Path
) -> None:
    a, b = deployments
    _, client, fake = make_resilient(**SLACK, models_file=models_file(tmp_path, a, b, for_a="requests_per_minute = 5"))

    await ask(client, 30)

    assert len(a.requests_for(PRIMARY)) == 5
    assert len(b.requests_for(PRIMARY)) == 25
    fake.now += 61  # a new minute
    await ask(client, 10)
    assert len(a.requests_for(PRIMARY)) > 5


async def test_a_prompt_longer_than_a_deployments_window_skips_it_without_a_call(
    make_resilient: Callable[..., Made], deployments: tuple[ProviderDouble, ProviderDouble], tmp_path: Path
) -> None:
    a, b = deployments
    _, client, _ = make_resilient(**SLACK, models_file=models_file(tmp_path, a, b, for_a="context_window = 200"))
    long_question = {"input": {"question": "Why is the sky blue? " * 60}}

    answers = await ask(client, 10, long_question)

    assert {r.status_code for r in answers} == {200}
    assert a.requests_for(PRIMARY) == []
    assert len(b.requests_for(PRIMARY)) == 10


async def test_a_two_rung_ladder_between_two_endpoints_falls_over_and_has_no_floor(
    make_resilient: Callable[..., Made], deployments: tuple[ProviderDouble, ProviderDouble], tmp_path: Path
) -> None:
    a, b = deployments
    path = tmp_path / "models.toml"
    path.write_text(
        f'[ladders]\nfallback = ["openai", "gpt4"]\n\n'
        f'[[deployments]]\nalternative = "openai"\nkind = "openai"\nbase_url = "{a.url}/v1"\n'
        f'api_key_env = "{KEY_A}"\nmodel = "{PRIMARY}"\n\n'
        f'[[deployments]]\nalternative = "gpt4"\nkind = "openai"\nbase_url = "{b.url}/v1"\n'
        f'api_key_env = "{KEY_B}"\nmodel = "gpt-4o"\n',
        encoding="utf-8",
    )
    _, client, _ = make_resilient(**SLACK, models_file=path)
    a.set(PRIMARY, Behaviour(fail_status=503))

    (fell_over,) = await ask(client, 1)
    b.set("gpt-4o", Behaviour(fail_status=503))
    (failed,) = await ask(client, 1)

    assert (fell_over.status_code, fell_over.headers["x-served-by"], fell_over.headers["x-fallback-rung"]) == (
        200,
        "gpt-4o",
        "1",
    )
    assert failed.status_code == 503
    assert [(t["model"], t["cause"]) for t in failed.json()["attempts"]] == [
        (PRIMARY, "server_error"),
        ("gpt-4o", "server_error"),
    ], "no local model: the ladder has two rungs"


async def test_the_openai_door_balances_the_same_deployments(
    make_resilient: Callable[..., Made], deployments: tuple[ProviderDouble, ProviderDouble], tmp_path: Path
) -> None:
    a, b = deployments
    _, client, _ = make_resilient(**SLACK, models_file=models_file(tmp_path, a, b))
    body = {"model": "openai", "messages": [{"role": "user", "content": "What is a load balancer?"}]}
    a.set(PRIMARY, Behaviour(fail_status=503))

    answers = [await client.post("/v1/chat/completions", json=body) for _ in range(10)]

    assert {r.status_code for r in answers} == {200}
    assert len(b.requests_for(PRIMARY)) == 10
    assert {r.json()["model"] for r in answers} == {PRIMARY}


KEY_A2 = "TEST_DEPLOYMENT_KEY_A2"
REVOKED = "sk-test-deployment-a2-revoked-0123"


async def test_a_refused_key_leaves_the_rotation_at_once_is_alerted_once_and_probed_later(
    make_resilient: Callable[..., Made],
    deployments: tuple[ProviderDouble, ProviderDouble],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = deployments
    monkeypatch.setenv(KEY_A2, REVOKED)
    path = tmp_path / "models.toml"
    path.write_text(
        f'[[deployments]]\nalternative = "openai"\nname = "a"\nkind = "openai"\nbase_url = "{a.url}/v1"\n'
        f'api_key_env = ["{KEY_A}", "{KEY_A2}"]\nmodel = "{PRIMARY}"\n',
        encoding="utf-8",
    )
    app, client, fake = make_resilient(**SLACK, models_file=path, key_probe_s=300, breaker_consecutive_failures=2)
    a.set(PRIMARY, Behaviour(refused_keys=frozenset({REVOKED})))

    answers = await ask(client, 10)

    assert {(r.status_code, r.headers["x-served-by"], r.headers["x-fallback-rung"]) for r in answers} == {
        (200, PRIMARY, "0")
    }, "the other key answers at once, on the same deployment"
    used = [served.key for served in a.requests_for(PRIMARY)]
    assert used.count(REVOKED) == 1, "refused once, then out of rotation"
    assert len(used) == 11
    assert await breaker_state(client, "a") == "closed", "a refused key says nothing of the endpoint"
    history = await key_alerts(client)
    assert [(alert["state"], alert["labels"]["key"]) for alert in history] == [("firing", KEY_A2)]
    assert REVOKED not in json.dumps(history), "the alert names the variable, never the key"
    assert not [a for a in (await client.get("/monitoring/alerts")).json()["history"] if a["rule"] == "llm_error"]

    fake.now += 301  # the probe is due: still refused, out again, no second alert
    await ask(client, 4)
    assert [served.key for served in a.requests_for(PRIMARY)].count(REVOKED) == 2
    assert [alert["state"] for alert in await key_alerts(client)] == ["firing"]

    a.set(PRIMARY, Behaviour())  # the key is valid again: the next probe takes it back
    fake.now += 301
    await ask(client, 4)
    assert [served.key for served in a.requests_for(PRIMARY)][-4:].count(REVOKED) == 2, "in turn again"
    assert sorted(alert["state"] for alert in await key_alerts(client)) == ["firing", "resolved"]
    calls = await app.state.monitoring.store.find(request_id=answers[0].headers["x-request-id"])
    assert {c.metadata.get("provider_key") for c in calls} <= {KEY_A, KEY_A2}


async def key_alerts(client: httpx.AsyncClient) -> list[dict]:
    history = (await client.get("/monitoring/alerts")).json()["history"]
    return [alert for alert in history if alert["rule"] == "provider_key"]


def only_a(tmp_path: Path, a: ProviderDouble) -> str:
    return (
        '[ladders]\nfallback = ["openai", "local"]\n\n'
        f'[[deployments]]\nalternative = "openai"\nname = "a"\nkind = "openai"\nbase_url = "{a.url}/v1"\n'
        f'api_key_env = "{KEY_A}"\nmodel = "{PRIMARY}"\n'
    )


async def test_a_reload_adds_a_deployment_under_load_with_no_failed_request_and_keeps_the_breakers(
    make_resilient: Callable[..., Made], deployments: tuple[ProviderDouble, ProviderDouble], tmp_path: Path
) -> None:
    a, b = deployments
    path = tmp_path / "models.toml"
    path.write_text(only_a(tmp_path, a), encoding="utf-8")
    _, client, _ = make_resilient(**SLACK, models_file=path, breaker_consecutive_failures=2)
    a.set(PRIMARY, Behaviour(fail_status=503))
    await ask(client, 2)  # a's breaker opens; local answers meanwhile
    assert await breaker_state(client, "a") == "open"

    async def load() -> list[int]:
        return [r.status_code for r in await ask(client, 30)]

    background = asyncio.create_task(load())
    await asyncio.sleep(0)  # the load is under way
    models_file(tmp_path, a, b)  # the same a, and b
    reloaded = await client.post("/models/reload", json={})
    statuses = await background

    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["deployments"]["openai"] == ["a", "b"]
    assert set(statuses) == {200}
    assert len(b.requests_for(PRIMARY)) > 0, "the new deployment takes traffic"
    assert await breaker_state(client, "a") == "open", "an unchanged deployment keeps its breaker"
    assert len(a.requests_for(PRIMARY)) == 2


@pytest.mark.parametrize(
    ("broken", "told"),
    [
        (
            '[[deployments]]\nalternative = "openai"\nkind = "openai"\nmodel = "m"\nweight = -1\n',
            ":1: deployments.0.weight",
        ),
        ('[ladders]\nfallback = ["gpt4", "local"]\n', "the fallback ladder changed"),
    ],
)
async def test_a_reload_of_a_broken_file_is_refused_and_the_running_configuration_kept(
    make_resilient: Callable[..., Made],
    deployments: tuple[ProviderDouble, ProviderDouble],
    tmp_path: Path,
    broken: str,
    told: str,
) -> None:
    a, b = deployments
    path = models_file(tmp_path, a, b)
    _, client, _ = make_resilient(**SLACK, models_file=path)
    path.write_text(broken, encoding="utf-8")

    refused = await client.post("/models/reload", json={})
    answers = await ask(client, 10)

    assert refused.status_code == 409
    assert (refused.json()["error"], told in refused.json()["message"]) == ("models_file_refused", True)
    assert {r.status_code for r in answers} == {200}
    assert (len(a.requests_for(PRIMARY)), len(b.requests_for(PRIMARY))) == (5, 5), "still both, balanced"
    firing = (await client.get("/monitoring/alerts")).json()["firing"]
    assert any(alert["rule"] == "models_file" for alert in firing), firing


def groq_file(tmp_path: Path, double: ProviderDouble) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(
        '[alternatives.groq]\ntiers = ["pro", "enterprise"]\n\n[ladders]\nfallback = ["groq", "local"]\n\n'
        f'[[deployments]]\nalternative = "groq"\nkind = "openai"\nbase_url = "{double.url}/v1"\n'
        f'api_key_env = "{KEY_A}"\nmodel = "llama-3.3-70b"\n',
        encoding="utf-8",
    )
    return path


async def test_an_alternative_of_a_new_name_serves_both_doors_and_the_ladder(
    make_resilient: Callable[..., Made], deployments: tuple[ProviderDouble, ProviderDouble], tmp_path: Path
) -> None:
    a, _ = deployments
    _, client, _ = make_resilient(**SLACK, models_file=groq_file(tmp_path, a))
    chosen = {"input": {"question": "Hi?"}, "config": {"configurable": {"llm_model": "groq"}}}

    chat = await client.post("/chat/invoke", json=chosen)
    ladder = await client.post("/fallback/invoke", json=QUESTION)
    door = await client.post(
        "/v1/chat/completions", json={"model": "groq", "messages": [{"role": "user", "content": "Hi?"}]}
    )
    listed = (await client.get("/v1/models")).json()["data"]
    schema = (await client.get("/chat/config_schema")).text

    assert (chat.status_code, chat.headers["x-served-by"]) == (200, "llama-3.3-70b")
    assert (ladder.status_code, ladder.headers["x-served-by"]) == (200, "llama-3.3-70b")
    assert (door.status_code, door.json()["model"]) == (200, "llama-3.3-70b")
    assert "groq" in [model["id"] for model in listed]
    assert '"groq"' in schema, "the playground offers it"
    assert len(a.requests_for("llama-3.3-70b")) == 3


def test_settings_naming_an_alternative_neither_built_in_nor_declared_are_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from settings import Settings

    with pytest.raises(ValidationError, match=r"fallback_ladder: unknown alternatives \['groq'\]"):
        Settings(_env_file=None, fallback_ladder=["groq", "local"])
    declared = groq_file(tmp_path, ProviderDouble())
    settings = Settings(_env_file=None, fallback_ladder=["groq", "local"], models_file=declared)
    assert "groq" in settings.tiers["pro"].models and "groq" not in settings.tiers["free"].models
