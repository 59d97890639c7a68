"""Rewrites a question type's regex cues into a few combined patterns that the regex engine can skip through fast.

CueScanner.build splits each cue into its top-level branches, expands branches so that most start with a literal
character (_expand), and sorts them into literal-first, anchored and other alternations (_fast_patterns). Scanning
a question then takes a few passes instead of one search per cue (benchmarks/classifier_speed.py --compare).

A combined pattern reports one cue per stretch of text it matches, so a cue whose only match lies inside the match
of another cue of the same pass is not reported, where searching each cue's pattern alone would find it. Today's
classify() results depend on this; tests/unit/test_classifier.py pins where it happens on the labelled sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from policy.cues import Cue


def _alternatives(pattern: str) -> list[str]:
    """The pattern split at its top-level "|" (outside groups and character classes)."""
    parts: list[str] = []
    depth, start, i, in_class = 0, 0, 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 1  # skip the escaped character
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern.startswith("^", i + 1):
                i += 1
            if pattern.startswith("]", i + 1):
                i += 1  # a "]" first in a class is a literal
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


_SPECIAL: Final = frozenset("\\[](){}.^$*+?|")
_QUANTIFIERS: Final = frozenset("?*+{")
_MAX_EXPANSION = 64


def _literal_prefix(branch: str) -> str:
    """The branch's first token when it is a single literal character ("p", "가", "\\$", "\\n"), else ""."""
    if not branch:
        return ""
    if branch[0] == "\\":
        token = branch[:2] if len(branch) > 1 and (branch[1] == "n" or not branch[1].isalnum()) else ""
    else:
        token = "" if branch[0] in _SPECIAL else branch[0]
    return token if token and branch[len(token) : len(token) + 1] not in _QUANTIFIERS else ""


def _group_end(branch: str, start: int) -> int:
    """Index just past the ")" closing the group that opens at branch[start]."""
    depth, i = 0, start
    while i < len(branch):
        char = branch[i]
        if char == "\\":
            i += 1
        elif char == "[":
            i = branch.index("]", i + 2 if branch.startswith("^", i + 1) else i + 1)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced group in {branch!r}")


def _expand(branch: str) -> list[str]:
    r"""Equivalent branches that start with a literal character where that is cheap to arrange.

    (?:a|b)R -> aR|bR; (?:a)?R -> aR|R; [abc]R -> aR|bR|cR; \d+R -> 0\d*R|...|9\d*R; \bR -> \b + each of R's
    expansions; (?<![x])aR -> a(?<![x]a)R. Order is kept, so leftmost-first matching picks the same text.
    """
    expanded: list[str] | None = None
    if branch.startswith(r"\b"):
        expanded = [r"\b" + tail for tail in _expand(branch[2:])]
    elif branch.startswith("(?:"):
        end = _group_end(branch, 0)
        inner, rest = branch[3 : end - 1], branch[end:]
        if rest[:1] == "?" and rest[1:2] not in ("?", "+"):
            expanded = [alt + rest[1:] for alt in _alternatives(inner)] + [rest[1:]]
        elif rest[:1] not in _QUANTIFIERS:
            expanded = [alt + rest for alt in _alternatives(inner)]
    elif branch.startswith("(?<![") and (close := branch.find("]", 5) + 1) and branch.startswith(")", close):
        behind = branch[4:close]
        tails = _expand(branch[close + 1 :])
        if all(_literal_prefix(tail) for tail in tails):
            expanded = [
                (first := _literal_prefix(tail)) + f"(?<!{behind}{first})" + tail[len(first) :] for tail in tails
            ]
    elif branch.startswith(r"\d") and branch[2:3] not in ("?", "*", "{"):
        more, rest = (r"\d*", branch[3:]) if branch[2:3] == "+" else ("", branch[2:])
        expanded = [f"{digit}{more}{rest}" for digit in "0123456789"]
    elif branch.startswith("[") and not branch.startswith("[^"):
        close = branch.index("]", 1)
        chars, rest = branch[1:close], branch[close + 1 :]
        if "\\" not in chars and "-" not in chars and rest[:1] not in _QUANTIFIERS:
            expanded = [char + rest for char in chars]
    if expanded is None or len(expanded) > _MAX_EXPANSION:
        return [branch]
    result = [deeper for alt in expanded for deeper in (_expand(alt) if alt != branch else [alt])]
    return result if len(result) <= _MAX_EXPANSION else expanded


def _fast_patterns(branches: list[str]) -> tuple[str, str, str]:
    r"""Branches sorted into three alternations: literal-first, anchored at the start (\A), and the rest.

    The regex engine tries every branch at every position unless it can rule a position out by its first
    character: per branch when the branch starts with a literal, and for the whole pattern at once (a scan in C)
    when every branch does. So literal-first branches are grouped behind their first character
    ("p(?:ython|ip install)") in a pattern of their own, with a leading "\b" turned into a look-behind after that
    character, where it costs nothing on positions already ruled out. Anchored branches are tried once, at the
    start. The few that start otherwise go to the third pattern.
    """
    by_first: dict[tuple[str, bool], list[str]] = {}
    anchored: list[str] = []
    rest: list[str] = []
    for branch in branches:
        word = branch.startswith(r"\b")
        body = branch[2:] if word else branch
        first = _literal_prefix(body)
        if first and (not word or first.isalnum()):
            by_first.setdefault((first, word), []).append(body[len(first) :])
        elif branch.startswith(r"\A"):
            anchored.append(branch)
        else:
            rest.append(branch)
    literal = [
        first + (rf"(?<!\w{first})" if word else "") + "(?:" + "|".join(tails) + ")"
        for (first, word), tails in by_first.items()
    ]
    return "|".join(literal), "|".join(anchored), "|".join(rest)


@dataclass(frozen=True)
class CueScanner:
    """One type's cues as a few compiled patterns; each branch ends in an empty group named after its cue."""

    lowered: tuple[re.Pattern[str], ...]  # run over the lowercased text (no IGNORECASE: it disables the speed-ups)
    anchored: tuple[re.Pattern[str], ...]  # branches starting with \A, tried once, at the start
    cased: tuple[re.Pattern[str], ...]  # cues written as (?-i:...), run over the original text
    groups: dict[str, tuple[str, float]]  # group name -> (cue name, weight)

    @classmethod
    def build(cls, cues: tuple[Cue, ...]) -> CueScanner:
        groups: dict[str, tuple[str, float]] = {}
        lowered: list[str] = []
        cased: list[str] = []
        for name, weight, pattern in cues:
            for alternative in _alternatives(pattern):
                for branch in [alternative] if alternative.startswith("(?-i:") else _expand(alternative):
                    tag = f"g{len(groups)}"
                    groups[tag] = (name, weight)
                    # The name goes last: a group in front would hide the branch's first character from the engine.
                    (cased if branch.startswith("(?-i:") else lowered).append(f"{branch}(?P<{tag}>)")
        literal, anchored, rest = _fast_patterns(lowered)
        return cls(_compile_all(literal, rest), _compile_all(anchored), _compile_all("|".join(cased)), groups)

    def scan(self, text: str, lowered: str) -> dict[str, float]:
        """Cue name -> weight for the cues found in text (lowered is text.lower()).

        The order found (pass by pass, then by position) breaks ties between equal weights in the classifier.
        """
        found: dict[str, float] = {}
        matches = [match for pattern in self.lowered for match in pattern.finditer(lowered)]
        matches += [match for pattern in self.anchored if (match := pattern.match(lowered))]
        matches += [match for pattern in self.cased for match in pattern.finditer(text)]
        for match in matches:
            if match.lastgroup is not None:
                name, weight = self.groups[match.lastgroup]
                found[name] = weight
        return found


def compile_fast(pattern: str) -> tuple[re.Pattern[str], ...]:
    """A pattern for lowercased text, rewritten the same way into up to three patterns whose matches add up."""
    return _compile_all(*_fast_patterns([branch for alt in _alternatives(pattern) for branch in _expand(alt)]))


def _compile_all(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern, re.ASCII) for pattern in patterns if pattern)
