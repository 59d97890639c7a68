"""The rule-based question classifier: accuracy on labelled sets, complexity, language, explanations, cue scanners."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from policy.classifier import (
    _MULTI_STEP,
    _SCANNERS,
    _TABLES,
    Classification,
    Complexity,
    QuestionClassifier,
    QuestionType,
    _strip_code,
)
from policy.cue_scanner import _alternatives, _expand
from policy.cues import MULTI_STEP

DATA = Path(__file__).resolve().parent.parent / "data"
DEV_SET = DATA / "classifier_dev.jsonl"
HELD_OUT = DATA / "labelled_questions.jsonl"

CLASSIFIER = QuestionClassifier()


def load(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def recall_by_type(items: list[dict[str, str]]) -> dict[str, float]:
    seen: Counter[str] = Counter(item["type"] for item in items)
    right: Counter[str] = Counter(
        item["type"] for item in items if CLASSIFIER.classify(item["question"]).type == item["type"]
    )
    return {kind: right[kind] / seen[kind] for kind in seen}


def test_dev_set_is_balanced_over_types_and_languages() -> None:
    items = load(DEV_SET)
    cells = Counter((item["type"], item["lang"]) for item in items)

    assert len(items) >= 90
    assert {kind for kind, _ in cells} == {str(kind) for kind in QuestionType}
    assert {lang for _, lang in cells} == {"ko", "en"}
    assert max(cells.values()) - min(cells.values()) <= 2, cells


def test_dev_set_accuracy_is_at_least_90_percent() -> None:
    items = load(DEV_SET)
    wrong = []
    for item in items:
        result = CLASSIFIER.classify(item["question"])
        if result.type != item["type"]:
            wrong.append(f"{item['type']} -> {result.type} ({', '.join(result.matched)}): {item['question']!r}")

    accuracy = 1 - len(wrong) / len(items)
    assert accuracy >= 0.9, f"accuracy {accuracy:.3f}; misclassified:\n" + "\n".join(wrong)


def test_held_out_set_accuracy_and_recall_per_type() -> None:
    # Written by someone else against the type definitions only; the classifier was never tuned on it. The
    # message gives figures, not questions, so a failure does not leak the set into the next round of tuning.
    items = load(HELD_OUT)
    assert len(items) >= 100

    recall = recall_by_type(items)
    counts = Counter(item["type"] for item in items)
    accuracy = sum(recall[kind] * counts[kind] for kind in counts) / len(items)
    figures = ", ".join(f"{kind} {recall[kind]:.2f} of {counts[kind]}" for kind in sorted(recall))
    assert accuracy >= 0.85, f"accuracy {accuracy:.3f}; recall by type: {figures}"
    assert min(recall.values()) >= 0.7, f"recall by type: {figures}"


@pytest.mark.parametrize(
    "question",
    ["What is the capital of France?", "Hi!", "광합성이 뭐야?", "123 곱하기 45는 얼마야?", "Write a haiku about rain."],
)
def test_short_single_questions_are_simple(question: str) -> None:
    assert CLASSIFIER.classify(question).complexity is Complexity.SIMPLE


@pytest.mark.parametrize(
    "question",
    [
        "I run a small online shop on a single VPS. First, explain step by step how to move it to Kubernetes, "
        "then compare that with Docker Swarm for a team of three. What are the trade-offs in cost and on-call load? "
        "Finally, which would you pick and why?",
        "파이썬으로 웹 크롤러를 만들고 싶어요. 먼저 어떤 라이브러리를 써야 하는지 알려주고, 그 다음 로그인 처리 방법과 "
        "수집한 데이터를 DB에 저장하는 방법을 단계별로 자세히 설명해 주세요. 차단을 피하는 요령도 있을까요?",
    ],
)
def test_long_multi_part_questions_are_complex(question: str) -> None:
    assert CLASSIFIER.classify(question).complexity is Complexity.COMPLEX


def test_a_two_part_comparison_is_moderate() -> None:
    assert CLASSIFIER.classify("Compare Python and Go for backend services.").complexity is Complexity.MODERATE


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("How do I reverse a list in Python?", "en"),
        ("파이썬에서 리스트를 뒤집는 방법은?", "ko"),
        ("React에서 useState랑 useEffect 차이가 뭐야?", "ko"),  # Korean sentence around English identifiers
        ("What does 안녕 mean in English?", "en"),  # English sentence quoting a Korean word
        ("```python\nprint('hello world')\n```\n이 코드 실행하면 뭐가 나와?", "ko"),  # code is not counted
        ("ㅋㅋㅋ", "ko"),
        ("42", "en"),
    ],
)
def test_language_is_detected_by_hangul_share(question: str, language: str) -> None:
    assert CLASSIFIER.classify(question).language == language


def test_language_matches_the_dev_set_labels() -> None:
    wrong = [
        item["question"] for item in load(DEV_SET) if CLASSIFIER.classify(item["question"]).language != item["lang"]
    ]

    assert wrong == []


def test_reason_names_the_type_the_cues_and_the_complexity() -> None:
    question = 'Traceback (most recent call last):\n  File "app.py", line 3\nKeyError: 1\nWhy does my dict lookup fail?'
    result = CLASSIFIER.classify(question)

    assert result.type is QuestionType.CODE
    assert "code:traceback" in result.matched
    assert all(name.startswith("code:") for name in result.matched)
    reason = result.reason()
    assert reason.startswith("code question (cues: traceback")
    assert f"; {result.complexity}: " in reason
    assert f"{result.words} words" in reason


def test_reason_for_the_fallback_says_no_cue_matched() -> None:
    result = CLASSIFIER.classify("Namsan Tower at night")

    assert result == Classification(QuestionType.FACTUAL, Complexity.SIMPLE, "en", 0.0, (), 4, 1)
    assert result.reason() == "factual question (no cues: fallback); simple: 1 sentence, 4 words"


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("def add(a, b): return a + b  -- why does this return None?", QuestionType.CODE),
        ("SELECT name FROM users WHERE id = 3; 이 쿼리 왜 느려?", QuestionType.CODE),
        ("∫ x^2 dx from 0 to 3", QuestionType.MATH),
        ("2x + 3 = 11, x는?", QuestionType.MATH),
        ("Should I rent or buy a flat in Seoul?", QuestionType.REASONING),
        ("이직하는 게 나을까요, 지금 회사에 남는 게 나을까요?", QuestionType.REASONING),
        ("Write a limerick about a sleepy owl.", QuestionType.CREATIVE),
        ("가을을 주제로 시 한 편 써줘", QuestionType.CREATIVE),
        ("Who painted the Sistine Chapel ceiling?", QuestionType.FACTUAL),
        ("조선은 언제 건국됐어?", QuestionType.FACTUAL),
        ("hey, how's it going?", QuestionType.SMALLTALK),
        ("고마워요!", QuestionType.SMALLTALK),
    ],
)
def test_one_clear_example_per_type_and_language(question: str, kind: QuestionType) -> None:
    assert CLASSIFIER.classify(question).type is kind


def test_a_greeting_in_front_of_a_real_question_does_not_make_it_smalltalk() -> None:
    question = "Hi! Could you write a Python function that merges two sorted lists into one sorted list?"

    assert CLASSIFIER.classify(question).type is QuestionType.CODE


def test_confidence_is_a_share_of_the_scores() -> None:
    only_code = CLASSIFIER.classify("```\nnpm install\n```")
    mixed = CLASSIFIER.classify("Why does my Python function return None?")

    assert only_code.confidence == 1.0
    assert 0.0 < mixed.confidence < 1.0


def test_cue_patterns_have_no_capturing_groups() -> None:
    # Each cue is told apart by a named group of its own; a capturing group inside a cue would break that.
    for kind, cues in _TABLES:
        for name, _, pattern in cues:
            assert re.compile(pattern).groups == 0, f"{kind}:{name}"


# Where the scanners miss a cue that its own pattern finds, by (file, 1-based line, type). Each lies inside the match
# of another cue of the same type (in the comment), and a combined pattern reports one cue per stretch of text (see
# policy/cue_scanner.py). Reporting them would change 14 classify() results on these sets (confidence and matched
# cues; see benchmarks/classifier_speed.py --compare), so they are pinned as today's behaviour: a rewrite that loses,
# invents or recovers any cue fails the test below.
SHADOWED: dict[tuple[str, int, QuestionType], set[str]] = {
    ("classifier_dev", 22, QuestionType.CREATIVE): {"write"},  # in names: "이름 좀 지어"
    ("classifier_dev", 37, QuestionType.CODE): {"framework"},  # in command: "git rebase"
    ("classifier_dev", 45, QuestionType.REASONING): {"risks"},  # in pros-cons: "장단점"
    ("classifier_dev", 77, QuestionType.FACTUAL): {"what-is"},  # in where: "which planet"
    ("classifier_dev", 83, QuestionType.FACTUAL): {"what-is"},  # in definition: "란 무엇"
    ("classifier_dev", 98, QuestionType.MATH): {"word-problem"},  # in statistics: "average speed"
    ("classifier_dev", 125, QuestionType.FACTUAL): {"history"},  # in who: "who invented"
    ("classifier_dev", 133, QuestionType.CODE): {"operator"},  # in language: "c++"
    ("classifier_dev", 151, QuestionType.CODE): {"operator"},  # in language: "c++"
    ("classifier_dev", 152, QuestionType.MATH): {"word-problem"},  # in units: "몇 km"
    ("labelled_questions", 21, QuestionType.REASONING): {"risks"},  # in pros-cons
    ("labelled_questions", 92, QuestionType.MATH): {"word-problem"},  # in units
    ("labelled_questions", 101, QuestionType.FACTUAL): {"what-is"},  # in where
}


def numbered_questions() -> list[tuple[tuple[str, int], str]]:
    """Every question of both labelled sets as classify() scans it, keyed by (file, line); no blank lines in them."""
    return [
        ((path.stem, line), item["question"].strip())
        for path in (DEV_SET, HELD_OUT)
        for line, item in enumerate(load(path), start=1)
    ]


def test_scanners_find_exactly_the_cues_of_the_plain_patterns_but_the_pinned_shadowed_ones() -> None:
    # The reference: each cue's pattern as written, compiled once and searched on its own. Failure messages name
    # file and line only, never the question.
    plain = {
        kind: [(name, weight, re.compile(pattern, re.IGNORECASE | re.ASCII)) for name, weight, pattern in cues]
        for kind, cues in _TABLES
    }
    missed: dict[tuple[str, int, QuestionType], set[str]] = {}
    for (file, line), text in numbered_questions():
        for kind, scanner in _SCANNERS:
            found = scanner.scan(text, text.lower())
            expected = {name: weight for name, weight, pattern in plain[kind] if pattern.search(text)}
            assert found.items() <= expected.items(), (file, line, kind)  # nothing invented, same weights
            if lost := set(expected) - set(found):
                missed[file, line, kind] = lost

    assert missed == SHADOWED


def test_rewritten_multi_step_cues_count_the_matches_of_the_plain_pattern() -> None:
    plain = re.compile(MULTI_STEP, re.ASCII)
    counted = 0
    for where, text in numbered_questions():
        lowered = _strip_code(text)[0].lower()
        expected = len(plain.findall(lowered))
        assert sum(len(pattern.findall(lowered)) for pattern in _MULTI_STEP) == expected, where
        counted += expected

    assert counted >= 10  # the sets do exercise the multi-step cues (13 matches today)


@pytest.mark.parametrize(
    ("branch", "expanded"),
    [
        (r"(?:ab|c)d", ["abd", "cd"]),
        (r"(?:ab)?c", ["abc", "c"]),  # the empty alternative last, as the engine tries it
        (r"[xy]z", ["xz", "yz"]),
        (r"\d+x", [rf"{digit}\d*x" for digit in "0123456789"]),
        (r"\b(?:ab|c)", [r"\bab", r"\bc"]),
        (r"(?<![x])ab", ["a(?<![x]a)b"]),
        (r"(?:a|b)+c", [r"(?:a|b)+c"]),  # a repeated group cannot be unrolled
        (r"[a-z]b", ["[a-z]b"]),  # nor can a range, cheaply
    ],
)
def test_expand_rewrites_a_branch_into_equivalent_ones_that_start_with_a_literal(
    branch: str, expanded: list[str]
) -> None:
    # The labelled sets do not reach every rule of the rewrite, so each rule is also checked on its own.
    assert _expand(branch) == expanded


def test_alternatives_split_only_at_top_level_bars() -> None:
    assert _alternatives(r"a|(?:b|c)|[|]|\|d|[]|]") == ["a", "(?:b|c)", "[|]", r"\|d", "[]|]"]
