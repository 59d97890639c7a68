"""Question classifier speed: microseconds per classify() call, no model involved.

Times QuestionClassifier.classify on every question of tests/data/classifier_dev.jsonl and, when it exists,
tests/data/labelled_questions.jsonl (only timings and counts are printed, never the questions or labels).
Each question is classified --rounds times after one warm-up pass; every call is timed on its own.

    .venv/bin/python benchmarks/classifier_speed.py [--rounds 200]

Prints, per file and overall, the number of questions, mean and p99 microseconds per question, and the slowest
single question's time (target: well under 1000 µs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy.classifier import QuestionClassifier

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="timed passes over each file")
    args = parser.parse_args()

    classifier = QuestionClassifier()
    everything: list[float] = []
    total = 0
    for path in FILES:
        if not path.exists():
            print(f"{path.name:<28} absent, skipped")
            continue
        questions = load_questions(path)
        samples = time_questions(classifier, questions, args.rounds)
        report(path.name, len(questions), samples)
        everything.extend(samples)
        total += len(questions)
    if everything:
        report("all", total, everything)


if __name__ == "__main__":
    main()
