"""What ``POST /v1/chat/completions`` accepts, as OpenAI's API defines it, and how it becomes a
run of our chains: LangChain messages, the ``configurable`` the LangServe routes would get, and
the generation options passed to the model.

Every field OpenAI's SDKs send is named here. A field we cannot honour (``n`` above 1, audio,
logprobs, ...) is refused with a 400 naming it, not silently dropped: a client that asked for two
choices or for audio must not take one text answer for what it asked. ``tools`` and
``response_format`` go to the models that can use them: the request says what it ``needs``, and a
ladder skips a rung whose model cannot (``Cause.UNSUPPORTED``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from annotated_types import Interval
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import ToolCall as LangChainToolCall
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from errors import RequestError
from vocabulary import TEMPERATURE_RANGE
from vocabulary.models import STRUCTURED_OUTPUT, TOOLS

MAX_STOP_SEQUENCES = 4  # as OpenAI's API

# Fields of OpenAI's request that this server does not honour yet; sent with a value that asks
# for something (not the SDKs' neutral defaults), each is a 400 naming it.
UNSUPPORTED = (
    "audio",
    "modalities",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "functions",  # the older spelling of tools
    "function_call",
    "prediction",
    "web_search_options",
    "service_tier",
    "store",
    "reasoning_effort",
    "frequency_penalty",
    "presence_penalty",
)
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "logprobs": (False,),
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "store": (False,),
    "service_tier": ("auto", "default"),
    "modalities": (["text"],),
}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON, as the model wrote it


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    def as_langchain(self) -> LangChainToolCall:
        try:
            args = json.loads(self.function.arguments or "{}")
        except ValueError:
            args = None
        if not isinstance(args, dict):
            raise RequestError(
                f"messages: tool call {self.id}'s arguments are not a JSON object",
                details={"parameter": "messages"},
            )
        return LangChainToolCall(name=self.function.name, args=args, id=self.id)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant's earlier calls
    tool_call_id: str | None = None  # a tool's answer: to which call

    @model_validator(mode="after")
    def _tool_answer_names_its_call(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")
        return self

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""

    def as_langchain(self) -> BaseMessage:
        if self.role in ("system", "developer"):
            return SystemMessage(self.text())
        if self.role == "assistant":
            return AIMessage(self.text(), tool_calls=[call.as_langchain() for call in self.tool_calls or []])
        if self.role == "tool":
            return ToolMessage(self.text(), tool_call_id=self.tool_call_id or "")
        return HumanMessage(self.text(), name=self.name)


class FunctionTool(BaseModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: FunctionTool


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: dict[Literal["name"], str]


class JsonSchemaFormat(BaseModel):
    name: str
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


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
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None

    # Accepted only with their neutral values (see ``UNSUPPORTED``).
    logprobs: bool | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    store: bool | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None

    def needs(self) -> frozenset[str]:
        """What a model must be able to do to answer this (``vocabulary.models``)."""
        needs = set()
        if self.tools and self.tool_choice != "none":
            needs.add(TOOLS)
        if self.response_format is not None and self.response_format.type != "text":
            needs.add(STRUCTURED_OUTPUT)
        return frozenset(needs)

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
        if self.tools:
            options["tools"] = [tool.model_dump(exclude_none=True) for tool in self.tools]
            if self.tool_choice is not None:
                choice = self.tool_choice
                options["tool_choice"] = choice if isinstance(choice, str) else choice.model_dump()
            if self.parallel_tool_calls is not None:
                options["parallel_tool_calls"] = self.parallel_tool_calls
        if self.response_format is not None and self.response_format.type != "text":
            options["response_format"] = self.response_format.model_dump(exclude_none=True, by_alias=True)
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
