"""What ``POST /v1/chat/completions`` accepts, as OpenAI's API defines it, and how it becomes a
run of our chains: LangChain messages, the ``configurable`` the LangServe routes would get, and
the generation options passed to the model.

Every field OpenAI's SDKs send is named here. A field we cannot honour (``n`` above 1, audio,
logprobs, tools for now) is refused with a 400 naming it, not silently dropped: a client that
asked for two choices or for audio must not take one text answer for what it asked.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Interval
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from errors import RequestError
from vocabulary import TEMPERATURE_RANGE

MAX_STOP_SEQUENCES = 4  # as OpenAI's API

# Fields of OpenAI's request that this server does not honour yet; sent with a value that asks
# for something (not the SDKs' neutral defaults), each is a 400 naming it.
UNSUPPORTED = (
    "audio",
    "modalities",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "prediction",
    "web_search_options",
    "service_tier",
    "store",
    "reasoning_effort",
    "frequency_penalty",
    "presence_penalty",
    "parallel_tool_calls",
)
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "logprobs": (False,),
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "store": (False,),
    "parallel_tool_calls": (True, False),  # meaningless without tools
    "service_tier": ("auto", "default"),
    "modalities": (["text"],),
}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    refusal: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""

    def as_langchain(self) -> BaseMessage:
        if self.role in ("system", "developer"):
            return SystemMessage(self.text())
        if self.role == "assistant":
            return AIMessage(self.text())
        return HumanMessage(self.text(), name=self.name)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False
    include_obfuscation: bool | None = None  # sent by newer SDKs; nothing to obfuscate here


Temperature = Annotated[float, Interval(ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1])]


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: Temperature | None = None
    top_p: Annotated[float, Interval(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    seed: int | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(None, max_length=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] | None = None

    # Accepted only with their neutral values (see ``UNSUPPORTED``).
    logprobs: bool | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    store: bool | None = None
    parallel_tool_calls: bool | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None

    def langchain_messages(self) -> list[BaseMessage]:
        return [message.as_langchain() for message in self.messages]

    def text_chars(self) -> int:
        return sum(len(message.text()) for message in self.messages)

    def generation_options(self) -> dict[str, Any]:
        """The per-request options every model takes, under OpenAI's names (the models rename
        them for their provider: ``providers.guard.GuardedStream.provider_options``)."""
        options: dict[str, Any] = {}
        max_tokens = self.max_completion_tokens or self.max_tokens
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        if self.top_p is not None:
            options["top_p"] = self.top_p
        if self.seed is not None:
            options["seed"] = self.seed
        if self.stop:
            options["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return options


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict"}


def _is_type_tag(part: str | int) -> bool:
    """A union member's name in an error's location (``stop.list[str]``), not a field."""
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part)


def parse_request(body: Any) -> ChatCompletionRequest:
    """``body`` as a request, or a ``RequestError`` (400 on this door) naming the first bad field."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", details={"parameter": None})
    for name in UNSUPPORTED:
        value = body.get(name)
        if value is not None and value not in _NEUTRAL.get(name, ()):
            raise RequestError(f"{name}: not supported by this server; leave it out", details={"parameter": name})
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as invalid:
        # A union's first member's type mismatch says least: prefer the error that says what is wrong.
        errors = sorted(invalid.errors(include_url=False), key=lambda e: str(e["type"]).endswith("_type"))
        error = errors[0]
        where = ".".join(str(part) for part in error["loc"] if not _is_type_tag(part))
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"`{where}` is not a field of this API; leave it out"
        elif error["type"] == "literal_error" and where == "n":
            message = "`n` above 1 is not supported by this server: ask once per answer"
        raise RequestError(f"{where}: {message}" if where else message, details={"parameter": where or None}) from None


def request_body_openapi() -> dict[str, Any]:
    """The request schema for the OpenAPI document (``/docs`` and the fuzz tests): the route reads
    the raw body itself, to answer a bad one in OpenAI's terms, so FastAPI cannot derive it."""
    schema = ChatCompletionRequest.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}
