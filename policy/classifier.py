"""Rule-based question classifier: type, complexity and language of a question, without calling a model.

Each type has a table of weighted cues (policy/cues.py), scanned by a few combined patterns per type
(policy/cue_scanner.py): classifying a question takes tens of microseconds, with no model and no network. The type
with the highest summed weight of distinct cues wins; factual is the fallback when nothing matches. Complexity comes
from length, sentence and question counts and multi-step cues.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from policy.cue_scanner import CueScanner, compile_fast
from policy.cues import CODE, CREATIVE, FACTUAL, MATH, MULTI_STEP, REASONING, SMALLTALK, Cue


class QuestionType(StrEnum):
    CODE = "code"
    MATH = "math"
    REASONING = "reasoning"
    CREATIVE = "creative"
    FACTUAL = "factual"
    SMALLTALK = "smalltalk"


class Complexity(StrEnum):
    SIMPLE = "simple"
    MODERATE = "moderate"
    COMPLEX = "complex"


@dataclass(frozen=True)
class Classification:
    type: QuestionType
    complexity: Complexity
    language: str  # "ko" or "en" (by Hangul share)
    confidence: float  # 0..1, share of the winning score among all scores (1.0 when only one type matched)
    matched: tuple[str, ...]  # short names of the cues that decided it, e.g. ("code:def", "code:error")
    words: int = 0  # whitespace-separated tokens outside code blocks (eojeol for Korean)
    sentences: int = 0

    def reason(self) -> str:
        cues = ", ".join(name.partition(":")[2] for name in self.matched)
        head = f"{self.type} question (cues: {cues})" if cues else f"{self.type} question (no cues: fallback)"
        sentences = f"{self.sentences} sentence" + ("" if self.sentences == 1 else "s")
        words = f"{self.words} word" + ("" if self.words == 1 else "s")
        return f"{head}; {self.complexity}: {sentences}, {words}"


_TABLES: Final[tuple[tuple[QuestionType, tuple[Cue, ...]], ...]] = (
    (QuestionType.CODE, CODE),
    (QuestionType.MATH, MATH),
    (QuestionType.REASONING, REASONING),
    (QuestionType.CREATIVE, CREATIVE),
    (QuestionType.FACTUAL, FACTUAL),
    (QuestionType.SMALLTALK, SMALLTALK),
)

# On equal scores the more specific type wins; factual is the fallback, so it loses every tie.
_PRIORITY: Final[dict[QuestionType, int]] = {
    QuestionType.CODE: 5,
    QuestionType.MATH: 4,
    QuestionType.CREATIVE: 3,
    QuestionType.REASONING: 2,
    QuestionType.SMALLTALK: 1,
    QuestionType.FACTUAL: 0,
}

# Naming languages and tools says what a question is about, not what it asks for: "should I learn Rust or Go for
# backend work" is a decision. So topic words alone add up to at most this much; structural cues are not capped.
_CODE_TOPIC: Final = frozenset({"language", "framework", "concept", "term", "how-to"})
_CODE_TOPIC_CAP = 4.5
_MAX_MATCHED = 4
_SHORT_WORDS = 5  # a greeting of up to this many words is smalltalk even next to weak cues
_LONG_WORDS = 12  # past this, a greeting or "thanks" is politeness around a real question

_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.DOTALL)
_HANGUL = re.compile(r"[가-힣ㄱ-ㅎㅏ-ㅣ]")
_LATIN = re.compile(r"[A-Za-z]")
_SENTENCE_END = re.compile(r"[.!?。？！]+(?=\s|\Z)|\n+")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_YEAR = re.compile(r"1[5-9]\d\d|20\d\d")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+", re.MULTILINE)

_MULTI_STEP: Final = compile_fast(MULTI_STEP)
_SCANNERS: Final = tuple((qtype, CueScanner.build(table)) for qtype, table in _TABLES)


def _strip_code(text: str) -> tuple[str, int]:
    """The prose around code blocks and inline code, and the number of lines inside fenced blocks."""
    code_lines = 0
    for block in _CODE_BLOCK.finditer(text):
        if block.group().startswith("```"):
            code_lines += max(block.group().count("\n") - 1, 1)
    return _CODE_BLOCK.sub(" ", text), code_lines


def _language(prose: str, text: str) -> str:
    sample = prose if _HANGUL.search(prose) or _LATIN.search(prose) else text
    hangul = len(_HANGUL.findall(sample))
    latin = len(_LATIN.findall(sample))
    # A Hangul syllable carries about as much as two or three Latin letters, so it counts double; otherwise a
    # Korean question full of English identifiers ("React에서 useState랑 useEffect 차이") reads as English.
    return "ko" if hangul and 2 * hangul >= 0.3 * (2 * hangul + latin) else "en"


def _count_sentences(prose: str) -> int:
    parts = _SENTENCE_END.split(prose)
    return max(sum(1 for part in parts if any(ch.isalnum() for ch in part)), 1)


def _complexity(prose: str, language: str, words: int, sentences: int, code_lines: int) -> Complexity:
    # Korean eojeol bundle a stem with its particles and endings: one eojeol is about 1.5 English words.
    effective_words = words * 1.5 if language == "ko" else words
    points = 0
    if effective_words >= 60:
        points += 3
    elif effective_words >= 30:
        points += 2
    elif effective_words >= 16:
        points += 1
    if sentences >= 3:
        points += 1
    if prose.count("?") + prose.count("？") >= 2:
        points += 1
    lowered = prose.lower()
    points += min(sum(len(pattern.findall(lowered)) for pattern in _MULTI_STEP), 2)
    if len(_LIST_ITEM.findall(prose)) >= 2:
        points += 1
    if code_lines > 8:
        points += 1
    if points == 0:
        return Complexity.SIMPLE
    return Complexity.COMPLEX if points >= 3 else Complexity.MODERATE


class QuestionClassifier:
    """Classifies a question by weighted cues; stateless, so one instance can be shared by every request."""

    def classify(self, question: str) -> Classification:
        text = question.strip()
        prose, code_lines = _strip_code(text)
        language = _language(prose, text)
        words = len(prose.split())
        sentences = _count_sentences(prose)

        scores: dict[QuestionType, float] = {}
        cues: dict[QuestionType, dict[str, float]] = {}
        lowered = text.lower()
        numbers = sum(1 for number in _NUMBER.findall(text) if not _YEAR.fullmatch(number))
        for qtype, scanner in _SCANNERS:
            found = scanner.scan(text, lowered)
            if not numbers:
                # "how many", "몇 개", "discount" make a word problem only when there is something to compute.
                found.pop("word-problem", None)
            if found:
                cues[qtype] = found
                scores[qtype] = sum(found.values())
                if qtype is QuestionType.CODE:
                    topic = sum(weight for name, weight in found.items() if name in _CODE_TOPIC)
                    scores[qtype] -= max(topic - _CODE_TOPIC_CAP, 0.0)

        if numbers >= 2:
            # Several numbers tip a question towards arithmetic, but never decide it alone.
            cues.setdefault(QuestionType.MATH, {})["numbers"] = 1.5
            scores[QuestionType.MATH] = scores.get(QuestionType.MATH, 0.0) + 1.5

        if QuestionType.SMALLTALK in scores:
            if words <= _SHORT_WORDS:
                cues[QuestionType.SMALLTALK]["short"] = scores[QuestionType.SMALLTALK] * 0.5
                scores[QuestionType.SMALLTALK] *= 1.5
            elif words > _LONG_WORDS or code_lines:
                scores[QuestionType.SMALLTALK] *= 0.5

        if not scores:
            complexity = _complexity(prose, language, words, sentences, code_lines)
            return Classification(QuestionType.FACTUAL, complexity, language, 0.0, (), words, sentences)

        winner = max(scores, key=lambda qtype: (scores[qtype], _PRIORITY[qtype]))
        confidence = round(scores[winner] / sum(scores.values()), 3)
        decisive = sorted(cues[winner].items(), key=lambda item: -item[1])[:_MAX_MATCHED]
        matched = tuple(f"{winner}:{name}" for name, _ in decisive)
        complexity = _complexity(prose, language, words, sentences, code_lines)
        return Classification(winner, complexity, language, confidence, matched, words, sentences)
