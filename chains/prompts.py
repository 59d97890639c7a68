"""The prompt alternatives (``prompt_style``), each in Korean (the seed's wording) and English.

The language follows the question: Hangul in it means Korean, otherwise English. A client may
force one with the optional ``language`` input field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, Runnable, RunnableConfig, RunnableSerializable
from pydantic import BaseModel, ConfigDict, Field

from vocabulary import CONCISE_STYLE, DEFAULT_STYLE, DETAILED_STYLE, PROMPT_STYLES, STYLE_ID

__all__ = ["PROMPT_STYLES", "TEMPLATES", "bilingual_prompt", "configurable_prompt", "detect_language"]

Language = Literal["ko", "en"]

TEMPLATES: dict[str, dict[Language, str]] = {
    DEFAULT_STYLE: {
        "ko": "다음 질문에 답변해주세요: {question}",
        "en": "Please answer the following question: {question}",
    },
    DETAILED_STYLE: {
        "ko": (
            "당신은 전문가입니다. 다음 질문에 상세하고 구조적으로 답변해주세요.\n\n"
            "질문: {question}\n\n답변 형식:\n1. 개요\n2. 핵심 내용\n3. 예시\n4. 결론\n"
        ),
        "en": (
            "You are an expert. Answer the following question in detail and with structure.\n\n"
            "Question: {question}\n\nFormat:\n1. Overview\n2. Key points\n3. Example\n4. Conclusion\n"
        ),
    },
    CONCISE_STYLE: {
        "ko": "한 문장으로 답변: {question}",
        "en": "Answer in one sentence: {question}",
    },
}

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")


def detect_language(text: str) -> Language:
    return "ko" if _HANGUL.search(text) else "en"


class QuestionInput(BaseModel):
    """What every route takes: a question, and optionally the answer's language."""

    model_config = ConfigDict(extra="forbid")

    # No max_length here: the server's limit (LLM_SERVER_MAX_PROMPT_CHARS) answers 413 with the number.
    question: str = Field(..., min_length=1, description="The question to answer.")
    language: Literal["auto", "ko", "en"] = Field(
        "auto", description="Answer language; 'auto' follows the question (Hangul means Korean)."
    )


class BilingualPrompt(RunnableSerializable[dict[str, Any], PromptValue]):
    """One prompt style in both languages; picks the template per question."""

    style: str
    templates: dict[str, ChatPromptTemplate]

    @property
    def InputType(self) -> Any:  # noqa: N802 - LangChain's name
        return QuestionInput

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return QuestionInput

    def _template(self, value: dict[str, Any]) -> ChatPromptTemplate:
        language = value.get("language") or "auto"
        if language == "auto":
            language = detect_language(value["question"])
        return self.templates[language]

    def format_for(self, input: dict[str, Any]) -> PromptValue:
        """The prompt for ``input``, with no run of its own (``chains.prompted_text``)."""
        return self._template(input).format_prompt(question=input["question"])

    def invoke(self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any) -> PromptValue:
        return self._template(input).invoke({"question": input["question"]}, config)

    async def ainvoke(self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any) -> PromptValue:
        return await self._template(input).ainvoke({"question": input["question"]}, config)


def bilingual_prompt(style: str) -> BilingualPrompt:
    templates = {lang: ChatPromptTemplate.from_messages([("human", text)]) for lang, text in TEMPLATES[style].items()}
    return BilingualPrompt(style=style, templates=templates)


def configurable_prompt() -> Runnable[dict[str, Any], PromptValue]:
    """The ``prompt_style`` alternatives: default, detailed, concise."""
    others: dict[str, Any] = {style: bilingual_prompt(style) for style in PROMPT_STYLES if style != DEFAULT_STYLE}
    return bilingual_prompt(DEFAULT_STYLE).configurable_alternatives(
        ConfigurableField(
            id=STYLE_ID, name="Prompt style", description=f"{', '.join(PROMPT_STYLES[:-1])} or {PROMPT_STYLES[-1]}"
        ),
        default_key=DEFAULT_STYLE,
        **others,
    )
