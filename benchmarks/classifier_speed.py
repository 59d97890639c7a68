"""Question classifier speed: microseconds per classify() call, no model involved.

Times QuestionClassifier.classify on every question of tests/data/classifier_dev.jsonl and, when it exists,
tests/data/labelled_questions.jsonl (only timings and counts are printed, never the questions or labels).
Each question is classified --rounds times after one warm-up pass; every call is timed on its own.

    .venv/bin/python benchmarks/classifier_speed.py [--rounds 200] [--compare]

Prints, per file and overall, the number of questions, mean and p99 microseconds per question, and the slowest
single question's time (target: well under 1000 µs).

--compare times classify() with the rewritten cue scanners (policy/cue_scanner.py) against the same cues as
written, each pattern compiled once with re and searched on its own, in alternating order round by round so that
machine noise falls on both alike. It prints mean and p99 for each, the plain/fast ratios, and on how many
questions the plain patterns would change the result.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import policy.classifier as classifier_module
from policy.classifier import Classification, QuestionClassifier
from policy.cues import MULTI_STEP, Cue

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
FILES = (DATA / "classifier_dev.jsonl", DATA / "labelled_questions.jsonl")


def load_questions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def time_questions(classifier: QuestionClassifier, questions: list[str], rounds: int) -> list[float]:
    """Microseconds per call, one sample per call."""
    for question in questions:
        classifier.classify(question)
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for question in questions:
            began = clock()
            classifier.classify(question)
            samples.append((clock() - began) / 1000)
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def report(label: str, questions: int, samples: list[float]) -> None:
    print(
        f"{label:<28} {questions:>5} questions  mean {statistics.fmean(samples):7.1f} µs"
        f"  p99 {p99(samples):7.1f} µs  max {max(samples):8.1f} µs"
    )


class PlainScanner:
    """One type's cues as written: each pattern compiled once and searched on its own, no rewriting."""

    def __init__(self, cues: tuple[Cue, ...]) -> None:
        self.cues = [(name, weight, re.compile(pattern, re.IGNORECASE | re.ASCII)) for name, weight, pattern in cues]

    def scan(self, text: str, lowered: str) -> dict[str, float]:
        return {name: weight for name, weight, pattern in self.cues if pattern.search(text)}


FAST: dict[str, object] = {
    "_SCANNERS": classifier_module._SCANNERS,
    "_MULTI_STEP": classifier_module._MULTI_STEP,
}
PLAIN: dict[str, object] = {
    "_SCANNERS": tuple((qtype, PlainScanner(cues)) for qtype, cues in classifier_module._TABLES),
    "_MULTI_STEP": (re.compile(MULTI_STEP, re.ASCII),),
}


@contextmanager
def scanners(variant: dict[str, object]) -> Iterator[None]:
    """Points the classifier module at one set of compiled cues for the duration (benchmark only)."""
    saved = {name: getattr(classifier_module, name) for name in variant}
    for name, value in variant.items():
        setattr(classifier_module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(classifier_module, name, value)


def compare(files: list[tuple[str, list[str]]], rounds: int) -> None:
    classifier = QuestionClassifier()
    variants = {"fast": FAST, "plain": PLAIN}
    samples: dict[tuple[str, str], list[float]] = {(v, name): [] for v in variants for name, _ in files}
    results: dict[str, list[Classification]] = {}
    for variant, compiled in variants.items():
        with scanners(compiled):  # warm-up, and the results to compare
            results[variant] = [classifier.classify(q) for _, questions in files for q in questions]
    clock = time.perf_counter_ns
    for round_ in range(rounds):
        # Alternate which variant goes first, so drift in machine speed does not favour either.
        order = ("fast", "plain") if round_ % 2 == 0 else ("plain", "fast")
        for variant in order:
            with scanners(variants[variant]):
                for name, questions in files:
                    bucket = samples[variant, name]
                    for question in questions:
                        began = clock()
                        classifier.classify(question)
                        bucket.append((clock() - began) / 1000)

    print(f"{rounds} rounds, alternating; µs per classify() call")
    heading = f"{'fast mean':>9} {'p99':>7}  {'plain mean':>10} {'p99':>7}  {'ratio mean':>10} {'p99':>6}"
    print(f"{'':<28} {'n':>5}  {heading}")
    rows = [(name, len(questions), [name]) for name, questions in files]
    rows.append(("all", sum(len(questions) for _, questions in files), [name for name, _ in files]))
    for label, count, names in rows:
        fast = [s for name in names for s in samples["fast", name]]
        plain = [s for name in names for s in samples["plain", name]]
        fast_mean, plain_mean = statistics.fmean(fast), statistics.fmean(plain)
        print(
            f"{label:<28} {count:>5}  {fast_mean:9.1f} {p99(fast):7.1f}  {plain_mean:10.1f} {p99(plain):7.1f}"
            f"  {plain_mean / fast_mean:9.2f}x {p99(plain) / p99(fast):5.2f}x"
        )
    pairs = list(zip(results["fast"], results["plain"], strict=True))
    scored = sum(1 for fast, plain in pairs if _scored(fast) != _scored(plain))
    reordered = sum(1 for fast, plain in pairs if fast != plain) - scored
    print(
        f"plain patterns would change {scored} of {len(pairs)} results (type, confidence or cues),"
        f" and reorder the matched cues of {reordered} more"
    )


def _scored(result: Classification) -> tuple[object, ...]:
    return result.type, result.complexity, result.confidence, frozenset(result.matched)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="timed passes over each file")
    parser.add_argument("--compare", action="store_true", help="rewritten scanners against plain compiled patterns")
    args = parser.parse_args()

    present = []
    for path in FILES:
        if not path.exists():
            print(f"{path.name:<28} absent, skipped")
            continue
        present.append((path.name, load_questions(path)))
    if args.compare:
        compare(present, args.rounds)
        return

    classifier = QuestionClassifier()
    everything: list[float] = []
    total = 0
    for name, questions in present:
        samples = time_questions(classifier, questions, args.rounds)
        report(name, len(questions), samples)
        everything.extend(samples)
        total += len(questions)
    if everything:
        report("all", total, everything)


if __name__ == "__main__":
    main()
