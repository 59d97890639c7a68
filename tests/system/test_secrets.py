"""Secrets never leave the server: provider keys, client API keys (valid or wrong), the Redis
password, the SMTP password and the alert webhook URLs appear in no log line, monitoring record,
alert, error body, ``/metrics``, dashboard or operations endpoint.

One real ``python server.py`` (DEBUG log, API keys, Redis with a password, webhook, Slack, Discord
and SMTP alert sinks, the slow-call log on for every call) answers traffic that walks every path a
secret could take: invoke, stream, batch, stream_log and stream_events with keys sent as X-API-Key,
Bearer and Basic; wrong keys (401), a model above the tier (403), a rate limit (429), 413 and 422;
providers refusing the key (OpenAI's 401 names its first 8 and last 4 characters, a careless
compatible server repeats it whole, Gemini answers 400 API_KEY_INVALID), 429, 500 and 503 from
providers; every rung failing (503 body, stream error event); a stream cut after text (continued,
its provenance event) and a tool-call stream cut (the interrupted error event);
feedback, fault control, alerts delivered to every sink (one delivery failing), and Redis going
away. Then every place the server writes to or answers from is searched for each secret, its body
without the public prefix, every 8-character piece of that body, and key masks such as
``****Q9zX``. A SHA-256 prefix of a client key (``api_key_id``) is public by design.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from errors import describe
from errors.secrets import install_log_redaction, withhold
from policy.keys import hash_key
from policy.tiers import default_tiers
from settings import Settings
from tests.helpers.processes import ROOT, RedisServer, eventually, free_port, server_process
from tests.helpers.provider_double import Behaviour, ProviderDouble
from tests.helpers.receivers import HttpReceiver

# Bodies are mixed-case and wordless, so no 8-character piece of them occurs by chance.
OPENAI_KEY = "gsk_Vq8ZtR3mWx6LpN2cHj7KfD4sYb9QeU5a"  # an OpenAI-compatible endpoint's key: not "sk-..."
GOOGLE_KEY = "AIzaSyQ7vN3kLm9XcT2bWp6RdH8jF4gZ1uEoX"
REDIS_PASSWORD = "Rp9xQ2vLk7TzW4mN8cJdHs"
SMTP_USER, SMTP_PASSWORD = "alerts", "Sm3tPq8RvX2kLw7ZnB5yGc"
WEBHOOK_TOKEN, SLACK_TOKEN, DISCORD_TOKEN = "Wh6TkQ9pZr2XmV5nLc8JfA", "Sl4NvB8xQw2ZtK6mRp9HcE", "Dc7LqW3zXv9TmP2kNb6RgY"
ENTERPRISE_KEY = "lsk_Ent8Qw3ZrT6yVp2LmX9cKj4NbH"  # written in clear in the keys file
FREE_KEY = "lsk_Fre5Hq2WzP9kTx6LmV3cRb8JdQ"  # stored as its SHA-256
WRONG_KEY = "lsk_Wrg4Xk7QpZ2mVt9LcR6nHb3JsW"  # sent by a client, known to nobody
QUESTION = "What is a circuit breaker in distributed systems?"
MASK = r"[*•.…x]{3,}"  # what key masks put where the hidden characters were


@dataclass(frozen=True)
class Secret:
    name: str
    value: str
    prefix: str = ""  # the public part every such key starts with

    def leaks(self, text: str) -> list[str]:
        """The pieces of this secret that ``text`` shows."""
        body = self.value[len(self.prefix) :]
        pieces = {self.value, body} | {body[i : i + 8] for i in range(len(body) - 7)}
        found = sorted((piece for piece in pieces if piece in text), key=len, reverse=True)
        masked = re.search(re.escape(body[:4]) + MASK + "|" + MASK + re.escape(body[-4:]), text)
        return found + ([masked.group()] if masked else [])


@dataclass
class Evidence:
    """Everything the server wrote or answered, as text, by where it was found."""

    places: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    responses: dict[str, httpx.Response] = field(default_factory=dict)

    def add(self, place: str, what: str, content: str | bytes) -> None:
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        self.places.setdefault(place, []).append((what, text))

    def answer(self, label: str, response: httpx.Response) -> httpx.Response:
        self.responses[label] = response
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.add("responses", f"{label} ({response.status_code})", f"{headers}\n\n{response.text}")
        return response


class MailBox:
    """An SMTP server's inbox (aiosmtpd) that wants a login; keeps each message's raw bytes."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert isinstance(envelope.content, bytes)
        self.raw.append(envelope.content)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        return AuthResult(success=auth_data.password.decode() == SMTP_PASSWORD)


def new_key(tier: str, tiers: str) -> tuple[str, str]:
    """A key made the way operators make them, ``python -m policy.keys new``: the key, and the
    entry for the keys file (its hash)."""
    made = subprocess.run(
        [sys.executable, "-m", "policy.keys", "new", "--user", "dana", "--tier", tier],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "LLM_SERVER_TIERS": tiers},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [key] = re.findall(r"lsk_\S+", made)
    return key, "\n".join(line for line in made.splitlines() if not line.startswith("#"))


def shared_state(url: str) -> str:
    """Every key and value in the Redis the server shares its state through."""
    client = redis.Redis.from_url(url, decode_responses=True)
    readers = {
        "string": client.get,
        "hash": client.hgetall,
        "list": lambda key: client.lrange(key, 0, -1),
        "set": client.smembers,
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        "stream": lambda key: client.xrange(key),
    }
    lines = []
    for key in client.scan_iter():
        kind = str(client.type(key))
        lines.append(f"{key} ({kind}): {readers.get(kind, lambda _: '?')(key)!r}")
    client.close()
    return "\n".join(lines)


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"anyone:{key}".encode()).decode()


def ask(model: str | None = None, question: str = QUESTION, **config: Any) -> dict[str, Any]:
    configurable = {"llm_model": model} if model else {}
    return {"input": {"question": question}, "config": {"configurable": configurable, **config}}


@pytest.fixture(scope="module")
def run(
    provider_double: ProviderDouble, http_receiver: HttpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[Secret], Evidence]]:
    """The server, its traffic, and everything it left behind."""
    folder = tmp_path_factory.mktemp("secrets")
    provider_double.reset()
    http_receiver.reset()
    mailbox = MailBox()
    smtp = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=mailbox.authenticate,
        auth_require_tls=False,
    )
    smtp.start()
    store = RedisServer()
    store.start()
    redis.Redis(port=store.port).config_set("requirepass", REDIS_PASSWORD)
    try:
        yield _serve_and_collect(folder, provider_double, http_receiver, mailbox, smtp.port, store)
    finally:
        smtp.stop()
        store.kill()
        provider_double.reset()
        http_receiver.reset()


def _serve_and_collect(
    folder: Path, double: ProviderDouble, receiver: HttpReceiver, mailbox: MailBox, smtp_port: int, store: RedisServer
) -> tuple[list[Secret], Evidence]:
    tiers = default_tiers()
    tiers["free"] = tiers["free"].model_copy(update={"requests_per_minute": 3})
    hooks = {"webhook": f"/hooks/T01/B01/{WEBHOOK_TOKEN}", "slack": f"/slack/T02/B02/{SLACK_TOKEN}"}
    hooks["discord"] = f"/discord/9876/{DISCORD_TOKEN}"
    redis_url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{store.port}/0"
    settings = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": f"{double.url}/v1",
        "GOOGLE_API_KEY": GOOGLE_KEY,
        "GOOGLE_GEMINI_BASE_URL": double.url,
        "GEMINI_API_VERSION": "v1beta",
        "REDIS_URL": redis_url,
        "LLM_SERVER_LOG_LEVEL": "debug",
        "LLM_SERVER_TIERS": json.dumps({name: tier.model_dump() for name, tier in tiers.items()}),
        "LLM_SERVER_FAULT_CONTROL": "true",
        "LLM_SERVER_RETRY_ATTEMPTS": "1",
        # gpt-4o-mini's breaker opens at its 7th failure in a row, the last request that every rung fails.
        "LLM_SERVER_BREAKER_CONSECUTIVE_FAILURES": "7",
        "LLM_SERVER_BREAKER_MIN_CALLS": "100",
        "LLM_SERVER_REDIS_RETRY_S": "60",  # Redis stays away once killed
        "LLM_SERVER_MAX_PROMPT_CHARS": "500",
        "LLM_SERVER_SLOW_LOG_THRESHOLD_S": "0.000001",  # every call goes to the slow-call log
        "LLM_SERVER_ALERT_COOLDOWN_S": "0",
        "LLM_SERVER_ALERT_ERROR_RATE_MIN_CALLS": "2",
        "LLM_SERVER_ALERT_DELIVERY_ATTEMPTS": "2",
        "LLM_SERVER_ALERT_WEBHOOK_URL": receiver.url + hooks["webhook"],
        "LLM_SERVER_ALERT_SLACK_WEBHOOK_URL": receiver.url + hooks["slack"],
        "LLM_SERVER_ALERT_DISCORD_WEBHOOK_URL": receiver.url + hooks["discord"],
        "LLM_SERVER_ALERT_SMTP_HOST": "127.0.0.1",
        "LLM_SERVER_ALERT_SMTP_PORT": str(smtp_port),
        "LLM_SERVER_ALERT_SMTP_USERNAME": SMTP_USER,
        "LLM_SERVER_ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
        "LLM_SERVER_ALERT_EMAIL_TO": "oncall@example.test",
    }
    pro_key, pro_entry = new_key("pro", settings["LLM_SERVER_TIERS"])
    keys_file = folder / "api_keys.toml"
    keys_file.write_text(
        f"{pro_entry}\n\n"
        f'[[keys]]\nuser = "erin"\ntier = "enterprise"\nkey = "{ENTERPRISE_KEY}"\nadmin = true\n\n'
        f'[[keys]]\nuser = "frank"\ntier = "free"\nsha256 = "{hash_key(FREE_KEY)}"\n'
    )
    settings["LLM_SERVER_API_KEYS_FILE"] = str(keys_file)
    secrets = [
        Secret("OPENAI_API_KEY", OPENAI_KEY, "gsk_"),
        Secret("GOOGLE_API_KEY", GOOGLE_KEY, "AIza"),
        Secret("client key (hashed in the file)", pro_key, "lsk_"),
        Secret("client key (clear in the file)", ENTERPRISE_KEY, "lsk_"),
        Secret("client key (free tier)", FREE_KEY, "lsk_"),
        Secret("wrong client key", WRONG_KEY, "lsk_"),
        Secret("Basic credentials", basic(ENTERPRISE_KEY).removeprefix("Basic ")),
        Secret("Redis password", REDIS_PASSWORD),
        Secret("SMTP password", SMTP_PASSWORD),
        *(
            Secret(f"{sink} webhook token", token)
            for sink, token in zip(hooks, (WEBHOOK_TOKEN, SLACK_TOKEN, DISCORD_TOKEN), strict=True)
        ),
    ]
    receiver.fail_first[hooks["slack"]] = (2, 500)  # the first Slack delivery fails on every attempt
    evidence = Evidence()

    with server_process(folder / "server", settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        pro = {"X-API-Key": pro_key}
        bearer = {"Authorization": f"Bearer {pro_key}"}
        enterprise = {"Authorization": basic(ENTERPRISE_KEY)}
        free = {"X-API-Key": FREE_KEY}

        def post(label: str, path: str, headers: dict[str, str], body: Any) -> httpx.Response:
            return evidence.answer(label, http.post(path, json=body, headers=headers))

        def get(label: str, path: str, headers: dict[str, str] = enterprise) -> httpx.Response:
            return evidence.answer(label, http.get(path, headers=headers))

        # Answers, with each way of sending a key.
        answered = post("invoke x-api-key", "/chat/invoke", pro, ask("openai", metadata={"user_id": "u1"}))
        post("stream bearer", "/chat/stream", bearer, ask("gemini"))
        post(
            "batch basic",
            "/chat/batch",
            enterprise,
            {"inputs": [{"question": QUESTION}] * 2, "config": ask("gpt4")["config"]},
        )
        post("adaptive", "/adaptive/invoke", pro, ask())
        post("fallback", "/fallback/invoke", enterprise, ask())
        post("feedback", "/feedback", pro, {"run_id": answered.json()["metadata"]["run_id"], "score": 0.2})
        # Refusals.
        for label, headers in {
            "no key": {},
            "wrong x-api-key": {"X-API-Key": WRONG_KEY},
            "wrong bearer": {"Authorization": f"Bearer {WRONG_KEY}"},
            "wrong basic": {"Authorization": basic(WRONG_KEY)},
        }.items():
            post(label, "/chat/invoke", headers, ask())
            get(f"{label} (dashboard)", "/dashboard/data", headers)
        post("above tier", "/chat/invoke", free, ask("gpt4"))
        for n in range(3):
            post(f"free #{n}", "/chat/invoke", free, ask("openai"))
        post(
            "unknown configurable",
            "/chat/invoke",
            pro,
            {"input": {"question": QUESTION}, "config": {"configurable": {"api_key": WRONG_KEY}}},
        )
        post(
            "bad temperature",
            "/chat/invoke",
            pro,
            {"input": {"question": QUESTION}, "config": {"configurable": {"llm_temperature": 9}}},
        )
        post("too long", "/chat/invoke", pro, ask(question="why " * 200))
        double.set("gpt-4o", Behaviour(cut_stream=True))
        post("stream cut after text", "/chat/stream", enterprise, ask("gpt4"))  # the local model continues it
        double.set("gpt-4o", Behaviour(tool_calls=[("get_weather", {"city": "Paris"})], cut_stream=True))
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
        called = {"model": "gpt4", "messages": [{"role": "user", "content": "Weather?"}], "stream": True}
        post("tool stream cut", "/v1/chat/completions", enterprise, {**called, "tools": [tool]})
        # Providers refusing the key, failing and rate limiting.
        double.set("gpt-4o-mini", Behaviour(reject_key="masked"))
        post("openai masks the key", "/chat/invoke", pro, ask("openai"))
        post("openai masks the key (stream_log)", "/chat/stream_log", pro, ask("openai"))
        double.set("gpt-4o-mini", Behaviour(reject_key="echo"))
        post("openai echoes the key", "/chat/stream", bearer, ask("openai"))
        post("openai echoes the key (stream_events)", "/chat/stream_events", pro, ask("openai"))
        double.set("gemini-3.5-flash", Behaviour(reject_key="echo"))
        post("gemini refuses the key", "/chat/invoke", pro, ask("gemini"))
        post("gemini refuses the key (stream_log)", "/chat/stream_log", pro, ask("gemini"))
        for status in (429, 500, 503):
            double.set("gpt-4o", Behaviour(fail_status=status, retry_after="1"))
            post(f"gpt-4o {status}", "/chat/invoke", enterprise, ask("gpt4"))
        evidence.answer(
            "faults on", http.put("/faults", json={"local": {"kind": "status", "status": 503}}, headers=enterprise)
        )
        post("every rung failed", "/fallback/invoke", enterprise, ask())
        post("every rung failed (stream)", "/fallback/stream", enterprise, ask())
        post(
            "every rung failed (batch)",
            "/chat/batch",
            pro,
            {"inputs": [{"question": QUESTION}], "config": ask("openai")["config"]},
        )
        evidence.answer("faults off", http.put("/faults", json={}, headers=enterprise))
        double.reset()
        post("answers again", "/chat/invoke", pro, ask("openai"))
        evidence.add("shared state (Redis)", "every key", shared_state(redis_url))
        # Redis goes away: the next request notices and alerts.
        store.kill()
        post("without redis", "/chat/invoke", enterprise, ask("openai"))

        def delivered() -> bool:
            history = http.get("/monitoring/alerts", headers=enterprise).json()["history"]
            sinks = {"webhook", "slack", "discord", "email"}
            rules = {alert["rule"] for alert in history}
            every = all(sinks <= {d["sink"] for d in alert["deliveries"]} for alert in history)
            return every and {"llm_error", "circuit_breaker", "shared_state"} <= rules

        eventually(delivered, "every alert delivered to every sink")
        for path in (
            "/health",
            "/metrics",
            "/openapi.json",
            "/dashboard",
            "/dashboard/data",
            "/monitoring/stats",
            "/monitoring/calls?limit=1000",
            "/monitoring/alerts?limit=1000",
            "/monitoring/breakers",
            "/monitoring/routing",
            "/faults",
            "/chat/config_schema",
            "/chat/input_schema",
            "/chat/playground/",
        ):
            get(path, path)

    evidence.add("server log", "stdout and stderr", (folder / "server" / "server.log").read_bytes())
    evidence.add("slow-call log", "slow_calls.jsonl", (folder / "server" / "slow_calls.jsonl").read_bytes())
    for file in sorted((folder / "server").glob("monitoring.sqlite3*")):
        evidence.add("monitoring database", f"{file.name} (raw bytes)", file.read_bytes())
    with sqlite3.connect(folder / "server" / "monitoring.sqlite3") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
            evidence.add("monitoring database", f"table {table} ({len(rows)} rows)", "\n".join(map(repr, rows)))
    for received in receiver.received:
        evidence.add(
            "alert webhooks", received.path.split("/")[1], json.dumps(received.body) + json.dumps(received.headers)
        )
    for raw in mailbox.raw:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        evidence.add("alert email", str(message["Subject"]), raw + str(message).encode())
    return secrets, evidence


PLACES = [
    "server log",
    "slow-call log",
    "monitoring database",
    "alert webhooks",
    "alert email",
    "shared state (Redis)",
    "responses",
]


def test_the_run_went_through_every_path(run: tuple[list[Secret], Evidence]) -> None:
    _, evidence = run
    status = {label: r.status_code for label, r in evidence.responses.items()}
    assert all(status[label] == 200 for label in ("invoke x-api-key", "stream bearer", "batch basic", "feedback")), (
        status
    )
    assert [status[x] for x in ("no key", "wrong x-api-key", "wrong bearer", "wrong basic")] == [401] * 4
    assert status["above tier"] == 403
    assert 429 in {status[f"free #{n}"] for n in range(3)}
    assert status["unknown configurable"] == status["bad temperature"] == 422
    assert status["too long"] == 413
    for refused in ("openai masks the key", "gemini refuses the key", "gpt-4o 429"):
        assert evidence.responses[refused].headers["x-served-by"] == "SmolLM2-135M-Instruct", refused
    assert status["every rung failed"] == status["every rung failed (batch)"] == 503
    causes = [a["cause"] for a in evidence.responses["every rung failed"].json()["attempts"]]
    assert causes == ["auth", "auth", "server_error", "server_error"], causes
    assert "event: error" in evidence.responses["every rung failed (stream)"].text
    assert '"outcome": "continued"' in evidence.responses["stream cut after text"].text
    assert '"code": "stream_interrupted"' in evidence.responses["tool stream cut"].text
    assert len(evidence.places["alert webhooks"]) >= 3 and evidence.places["alert email"]
    alerts = evidence.responses["/monitoring/alerts?limit=1000"].json()["history"]
    failed = [d for alert in alerts for d in alert["deliveries"] if not d["ok"]]
    assert [d["sink"] for d in failed] == ["slack"], "one delivery failed, so its error is recorded too"
    # The providers did tell the keys back, and what the server kept of it says so without them.
    errors = [c["error"] for c in evidence.responses["/monitoring/calls?limit=1000"].json()["calls"] if c["error"]]
    assert any("Incorrect API key provided: [redacted]. You can find" in e for e in errors), errors
    assert any("API key not valid ([redacted])" in e for e in errors), errors
    assert "circuit_breaker" in {alert["rule"] for alert in alerts}
    # Each model's first failure is what its llm_error alert tells every sink.
    told = [alert["message"] for alert in alerts if alert["rule"] == "llm_error"]
    assert any("Incorrect API key provided: [redacted]. You can find" in m for m in told), told
    assert any("API key not valid ([redacted])" in m for m in told), told


@pytest.mark.parametrize("place", PLACES)
def test_no_secret_in(place: str, run: tuple[list[Secret], Evidence]) -> None:
    secrets, evidence = run
    assert all(text for _, text in evidence.places[place]), f"nothing collected from {place}"
    found = []
    for what, text in evidence.places[place]:
        for secret in secrets:
            for piece in secret.leaks(text)[:1]:  # the first is the longest: enough to find the rest
                at = text.index(piece)
                found.append(f"{secret.name} ({piece!r}) in {what}: …{text[max(0, at - 160) : at + 60]!r}…")
    assert not found, "\n".join(found)


def test_describe_withholds_known_secrets_and_masked_keys() -> None:
    withhold("tgp_v1_Kq3ZxW8rTm2LpV6nHc9J")  # an OpenAI-compatible key of no known shape
    told = RuntimeError(
        "Incorrect API key provided: tgp_v1_Kq3ZxW8rTm2LpV6nHc9J. Also sk-proj-Ab3d************************Wx9z, "
        "gsk_Vq8Z************************eU5a and AIzaSyQ7vN3kLm9XcT2bWp6Rd."
    )

    described = describe(told)

    assert described.count("[redacted]") == 4, described
    assert described.startswith("Incorrect API key provided: [redacted]. Also")
    assert not any(piece in described for piece in ("Kq3ZxW8r", "Ab3d", "Wx9z", "Vq8Z", "eU5a", "SyQ7vN3k"))


def test_log_records_lose_secrets_before_any_handler_formats_them(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction(["Lg7QwZ2xRt9KmV4pNc6H"])
    logger = logging.getLogger("llm_server.test_secrets")

    with caplog.at_level(logging.INFO):
        logger.info("POST %s %s", "https://hooks.example/T1/Lg7QwZ2xRt9KmV4pNc6H", 200)
        logger.info("settings: %s", {"password": "Lg7QwZ2xRt9KmV4pNc6H"})
        try:
            raise ValueError("refused Lg7QwZ2xRt9KmV4pNc6H")
        except ValueError:
            logger.exception("call failed")

    assert "Lg7QwZ2x" not in caplog.text, caplog.text
    assert all("[redacted]" in text for text in [*caplog.messages[:2], caplog.records[2].exc_text or ""])
    assert caplog.records[0].args == ("https://hooks.example/T1/[redacted]", 200), (
        "args stay args (uvicorn's access log unpacks them)"
    )


def test_credentials_in_provider_base_urls_and_encoded_secrets_never_reach_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(
        _env_file=None,
        openai_base_url="https://gw-user:Pr0xy%2Fpass-Zq81@proxy.example/v1",
        google_gemini_base_url="https://g:Gm-proxy-pass-7Tq2@gemini-proxy.example",
        alert_smtp_password="smtp pass/Wq5&x",
    )
    install_log_redaction(settings.secret_values())
    logger = logging.getLogger("llm_server.test_secrets")

    with caplog.at_level(logging.INFO):
        logger.info('HTTP Request: POST %s/chat/completions "HTTP/1.1 200 OK"', settings.openai_base_url)
        logger.info("POST https://gemini-proxy.example with password %s", "Gm-proxy-pass-7Tq2")
        logger.info("decoded %s, form-encoded %s", "Pr0xy/pass-Zq81", "smtp%20pass%2FWq5%26x")

    for piece in ("Pr0xy", "Zq81", "Gm-proxy", "7Tq2", "Wq5"):
        assert piece not in caplog.text, caplog.text
