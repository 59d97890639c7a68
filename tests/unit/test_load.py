"""The load benchmark's checks (``benchmarks/load.py``), tested on planted faults, so a check that
cannot fail would show here. (The bounded run itself: ``tests/system/test_load.py``.)"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.load import Outcome, audit

MINI, FLASH = "gpt-4o-mini", "gemini-3.5-flash"


def _question(load_id: str, route: str, kind: str) -> str:
    return f"Please answer the following question: Why retry? [load {load_id} {route} {kind}]"


class Run:
    """A small run where everything agrees: what clients got, the call records, the double's
    log, /monitoring/stats and /metrics."""

    def __init__(self) -> None:
        self.outcomes = [
            Outcome("load-0-0", "fallback", "invoke", ["0-0.0"], served_by=[FLASH]),
            Outcome("load-0-1", "quality", "stream", ["0-1.0"]),
            Outcome("load-1-0", "fallback", "batch", ["1-0.0", "1-0.1"], served_by=[MINI, MINI]),
        ]
        for outcome in self.outcomes:
            outcome.status = 200
            outcome.answers = [
                f"{MINI} answers: [load {load_id} {outcome.route} {outcome.kind}]" for load_id in outcome.ids
            ]
        attempts = [  # (question, route, kind, request, model, rung, ok, fault)
            ("0-0.0", "fallback", "invoke", "load-0-0", MINI, 0, False, "503"),
            ("0-0.0", "fallback", "invoke", "load-0-0", FLASH, 1, True, None),
            ("0-1.0", "quality", "stream", "load-0-1", MINI, 0, True, None),
            ("1-0.0", "fallback", "batch", "load-1-0", MINI, 0, True, None),
            ("1-0.1", "fallback", "batch", "load-1-0", MINI, 0, False, "cut_mid_stream"),
            ("1-0.1", "fallback", "batch", "load-1-0", MINI, 0, True, None),
        ]
        self.records: list[dict[str, Any]] = []
        self.served: list[dict[str, Any]] = []
        for n, (load_id, route, kind, request_id, model, rung, ok, fault) in enumerate(attempts):
            cause = None if ok else {"503": "server_error", "cut_mid_stream": "truncated_stream"}[fault or ""]
            self.records.append(
                {"run_id": f"run-{n}", "request_id": request_id, "ladder": route, "rung": rung, "model": model,
                 "outcome": "ok" if ok else "error", "cause": cause, "load_id": load_id}
            )  # fmt: skip
            status = 503 if fault == "503" else 200
            self.served.append(
                {
                    "model": model,
                    "question": _question(load_id, route, kind),
                    "status": status,
                    "fault": fault,
                    "completed": fault is None,
                }
            )
        self.extra_calls = 0  # planted into /metrics only
        self.unseen_answers: list[tuple[str, int | None]] = []  # the same

    def stats(self) -> dict[str, Any]:
        ok = [r for r in self.records if r["outcome"] == "ok"]
        return {
            "totals": {
                "calls": len(self.records),
                "errors": len(self.records) - len(ok),
                "fallback_answers": sum(1 for r in ok if r["rung"] > 0),
            }
        }

    def metrics(self) -> str:
        totals = self.stats()["totals"]
        lines = [
            "# TYPE llm_calls counter",
            f'llm_calls_total{{model="{MINI}",provider="openai",outcome="ok"}} {totals["calls"] + self.extra_calls}',
            "# TYPE llm_errors counter",
            f'llm_errors_total{{model="{MINI}",cause="server_error"}} {totals["errors"]}',
            "# TYPE llm_fallback_answers counter",
            f'llm_fallback_answers_total{{ladder="fallback",model="{FLASH}"}} {totals["fallback_answers"]}',
            "# TYPE http_requests counter",
        ]
        answered = Counter([(f"/{o.route}/{o.kind}", o.status) for o in self.outcomes] + self.unseen_answers)
        lines += [
            f'http_requests_total{{route="{r}",method="POST",status="{s}"}} {n}' for (r, s), n in answered.items()
        ]
        return "\n".join(lines) + "\n"

    def audit(self) -> list[str]:
        return audit(self.outcomes, self.records, self.served, self.stats(), self.metrics()).problems


def _duplicate_record(run: Run) -> None:
    twin = copy.deepcopy(run.records[1])
    twin["run_id"] = "run-twin"
    run.records.append(twin)


def _lose_record(run: Run) -> None:
    del run.records[0]


def _fail_a_client_request(run: Run) -> None:
    run.outcomes[1].failure = 'error event: {"status_code": 503}'


def _answer_another_question(run: Run) -> None:
    run.outcomes[2].answers.reverse()


def _count_a_500_no_client_saw(run: Run) -> None:
    run.unseen_answers.append(("/fallback/stream", 500))


def _answer_twice(run: Run) -> None:
    run.records.append({**run.records[1], "run_id": "run-again"})
    run.served.append(dict(run.served[1]))


def _record_under_another_request(run: Run) -> None:
    run.records[2]["request_id"] = "load-1-0"


def _count_a_call_twice_in_metrics(run: Run) -> None:
    run.extra_calls = 1


def _name_another_model(run: Run) -> None:
    run.outcomes[0].served_by = [MINI]


def _record_a_429_as_unknown(run: Run) -> None:
    run.served[0]["fault"], run.served[0]["status"] = "429", 429
    run.records[0]["cause"] = "unknown"


def _record_an_injected_fault_as_an_answer(run: Run) -> None:
    run.records[0] = {**run.records[0], "outcome": "ok", "cause": None}


def test_the_checks_pass_when_everything_agrees() -> None:
    assert Run().audit() == []


@pytest.mark.parametrize(
    ("plant", "problem"),
    [
        (_duplicate_record, "recorded without a request"),
        (_lose_record, "not recorded"),
        (_fail_a_client_request, "client request load-0-1 (quality stream) failed"),
        (_answer_another_question, "question 1-0.0 got another question's answer"),
        (_answer_twice, "2 successful attempts recorded"),
        (_record_under_another_request, "name another ladder or request"),
        (_count_a_call_twice_in_metrics, "/metrics llm_calls_total is 7"),
        (_count_a_500_no_client_saw, "/metrics counts HTTP answers"),
        (_name_another_model, "X-Served-By"),
        (_record_an_injected_fault_as_an_answer, "recorded without a request"),
        (_record_a_429_as_unknown, "faults 429 were recorded as {'unknown': 1}"),
    ],
)
def test_each_planted_fault_fails_the_checks(plant: Callable[[Run], None], problem: str) -> None:
    run = Run()
    plant(run)

    problems = run.audit()

    assert any(problem in p for p in problems), problems
