"""Continuing an answer whose stream broke after text reached the client: the request that asks
another model for the rest, and the overlap that model may repeat.

- The form of the request, per model (``vocabulary.models.PREFILL``): ``prefill`` ends the
  conversation with the answer so far as the assistant's own message, which a provider that
  supports it continues where it stops; ``user_turn`` adds a user message after it asking to go on
  without repeating. The ladder asks a model that rejects one form (400) once more in the other.
- The overlap: a continuing model often repeats the end of what was sent (a user turn invites it):
  its last words, the sentence it was in, or the whole answer. ``OverlapTrimmer`` holds the
  continuation back until it can tell whether it begins with the end of the answer so far, and
  drops what it repeats. A repeat is exact (after leading whitespace) and word-aligned: it starts
  where a word of the answer starts and ends at a word's end; a paraphrase is not detected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue

Form = Literal["prefill", "user_turn"]
PREFILL: Form = "prefill"
USER_TURN: Form = "user_turn"

CONTINUE_PROMPT = (
    "Your answer above was cut off. Continue it from exactly where it stops: do not repeat any of it, "
    "and add no preface or comment."
)
MIN_OVERLAP = 2  # characters: a single letter repeated is as likely a new word as a repeat


def other_form(form: Form) -> Form:
    return USER_TURN if form == PREFILL else PREFILL


def messages_of(input: Any) -> list[BaseMessage]:
    """A ladder's input (a prompt, messages, or a plain question) as chat messages."""
    if isinstance(input, PromptValue):
        return input.to_messages()
    if isinstance(input, str):
        return [HumanMessage(content=input)]
    if isinstance(input, Sequence) and all(isinstance(m, BaseMessage) for m in input):
        return list(input)
    raise TypeError(f"cannot continue an answer to a {type(input).__name__}")


def prompt_text(input: Any) -> str:
    """The text of a ladder's input, for estimating its tokens."""
    try:
        return "\n".join(message.text for message in messages_of(input))
    except TypeError:
        return str(input)


def continuation_input(input: Any, answer_so_far: str, form: Form) -> list[BaseMessage]:
    """The conversation ``input`` with the answer so far, asking for the rest in ``form``."""
    asked = [*messages_of(input), AIMessage(content=answer_so_far)]
    if form == USER_TURN:
        asked.append(HumanMessage(content=CONTINUE_PROMPT))
    return asked


def _word_starts(text: str) -> list[int]:
    return [i for i, c in enumerate(text) if not c.isspace() and (i == 0 or not text[i - 1].isalnum())]


class OverlapTrimmer:
    """Feed it a continuation's text as it streams; it returns what may go to the client (empty
    while it holds the start back) and ``dropped``, the characters it found repeated."""

    def __init__(self, answer_so_far: str, min_overlap: int = MIN_OVERLAP):
        self.sent = answer_so_far
        self.min_overlap = min_overlap
        self.held = ""
        self.decided = False
        self.dropped = 0
        self._starts = _word_starts(answer_so_far)  # where a repeat of the answer's end may start

    def feed(self, text: str) -> str:
        if self.decided:
            return text
        self.held += text
        body = self.held.lstrip()
        # Still possibly a repeat: the held text is the start of some suffix of the answer (a
        # complete one needs the next character too, to see that the repeat ends at a word's end).
        self._starts = [i for i in self._starts if self.sent.startswith(body, i) or body.startswith(self.sent[i:])]
        if any(len(body) <= len(self.sent) - i for i in self._starts):
            return ""
        return self._decide(body, finished=False)

    def finish(self) -> str:
        """The stream ended: whatever is still held, its repeat dropped."""
        if self.decided:
            return ""
        return self._decide(self.held.lstrip(), finished=True)

    def _decide(self, body: str, *, finished: bool) -> str:
        self.decided = True
        for i in self._starts:  # in order: the first is the longest repeat
            repeat = self.sent[i:].rstrip()
            if len(repeat) < self.min_overlap or not body.startswith(repeat):
                continue
            after = body[len(repeat) : len(repeat) + 1]
            if after and after.isalnum() and repeat[-1].isalnum():
                continue  # the continuation goes on with the same word: "cat" is not repeated by "catalog"
            if not after and not finished:
                continue
            self.dropped = len(self.held) - len(body) + len(repeat)
            return self._joined(self.held[self.dropped :])
        return self._joined(self.held)

    def _joined(self, rest: str) -> str:
        """``rest`` without the space it would double: the answer so far may end with one."""
        if self.sent[-1:].isspace() and rest[:1].isspace():
            stripped = rest.lstrip()
            self.dropped += len(rest) - len(stripped)
            return stripped
        return rest
