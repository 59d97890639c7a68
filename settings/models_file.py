"""The models file (``LLM_SERVER_MODELS_FILE``, TOML): the deployments that serve each model
alternative, and the ladder of ``/fallback`` and ``/quality``. Without one, each alternative has
the one deployment the settings describe (``OPENAI_BASE_URL``, ``GOOGLE_GEMINI_BASE_URL``, ...).

An alternative the file gives deployments to is served by those instead of its built-in one;
the others keep theirs. Each deployment names the environment variable holding its key, never
the key. A file that does not parse or validate refuses the start, naming the file, the line and
what to fix. See ``docs/models.example.toml`` for every field.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from errors import ConfigurationError
from vocabulary.models import (
    ALTERNATIVE_NAME,
    ALTERNATIVES,
    AUTO,
    EVERY_TIER,
    FLOOR,
    GEMINI_PROVIDER,
    LOCAL_PROVIDER,
    OPENAI_PROVIDER,
    PREFILL,
    REMOTE_CAPABILITIES,
    ModelSpec,
)

logger = logging.getLogger("llm_server.settings")

Kind = Literal["openai", "azure", "gemini", "local"]
AZURE_PROVIDER = "azure"  # the ``ls_provider`` LangChain's Azure model reports
PROVIDERS: dict[str, str] = {
    "openai": OPENAI_PROVIDER,
    "azure": AZURE_PROVIDER,
    "gemini": GEMINI_PROVIDER,
    "local": LOCAL_PROVIDER,
}
Capability = Literal["tools", "structured_output", "prefill"]
_DEPLOYMENT_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*deployments[ \t]*\]\]", re.MULTILINE)
_LADDERS_HEADER = re.compile(r"^[ \t]*\[[ \t]*ladders[ \t]*\]", re.MULTILINE)


class DeploymentEntry(BaseModel):
    """One ``[[deployments]]`` table of the file."""

    model_config = ConfigDict(extra="forbid")

    alternative: str = Field(description="The alternative it serves: a built-in one, or one of [alternatives].")
    name: str | None = Field(None, description="Unique; its breaker, metrics and records go by it (kind:model).")
    kind: Kind = Field(description="openai (any OpenAI-compatible endpoint), azure, gemini or local.")
    model: str = Field(description="The model the endpoint serves (Azure: the deployment's name).")
    base_url: str | None = Field(None, description="The endpoint (Azure: https://NAME.openai.azure.com).")
    api_key_env: str | list[str] | None = Field(
        None, description="The environment variable holding its key; several: keys taken in turn."
    )
    api_version: str | None = Field(None, description="Azure's api-version.")
    weight: Annotated[float, Field(gt=0)] = 1.0
    requests_per_minute: Annotated[int, Field(ge=1)] | None = None
    tokens_per_minute: Annotated[int, Field(ge=1)] | None = None
    context_window: Annotated[int, Field(ge=1)] | None = None
    capabilities: list[Capability] | None = None
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    first_token_timeout_s: Annotated[float, Field(gt=0)] | None = None
    price: str | None = Field(None, description="Its key in the price table. Default: model.")

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | list[str] | None) -> str | list[str] | None:
        names = [value] if isinstance(value, str) else value or []
        if any(not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in names):
            raise ValueError("give the name of the environment variable holding the key, not the key itself")
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("give one or more different variable names")
        return value

    @property
    def key_variables(self) -> list[str]:
        return [self.api_key_env] if isinstance(self.api_key_env, str) else list(self.api_key_env or [])

    @model_validator(mode="after")
    def _complete(self) -> DeploymentEntry:
        if self.kind == "azure" and not (self.base_url and self.api_version):
            raise ValueError("an azure deployment needs base_url (https://NAME.openai.azure.com) and api_version")
        if self.kind in ("azure", "gemini") and self.api_key_env is None:
            raise ValueError(f"a {self.kind} deployment needs api_key_env, the variable holding its key")
        if self.kind == "local" and self.alternative != FLOOR:
            raise ValueError(f"the local engine serves the {FLOOR!r} alternative only")
        return self

    @property
    def endpoint_name(self) -> str:
        return self.name or f"{PROVIDERS[self.kind]}:{self.model}"


class AlternativeEntry(BaseModel):
    """One ``[alternatives.NAME]`` table: an alternative of a new name, and the default tiers that
    may use it (when ``LLM_SERVER_TIERS`` is not set)."""

    model_config = ConfigDict(extra="forbid")

    tiers: list[str] = Field(default_factory=lambda: list(EVERY_TIER))


class ModelsFileContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alternatives: dict[Annotated[str, Field(pattern=ALTERNATIVE_NAME)], AlternativeEntry] = Field(default_factory=dict)
    ladders: dict[Literal["fallback"], list[str]] = Field(default_factory=dict)
    deployments: list[DeploymentEntry] = Field(default_factory=list)

    @field_validator("alternatives")
    @classmethod
    def _new_names(cls, value: dict[str, AlternativeEntry]) -> dict[str, AlternativeEntry]:
        taken = sorted(set(value) & {*ALTERNATIVES, AUTO})
        if taken:
            raise ValueError(f"{', '.join(taken)}: built in already; declare only alternatives of new names")
        return value


@dataclass(frozen=True)
class Endpoint:
    """How to reach one deployment: its spec, and what its client needs. ``more_keys``: its other
    keys, by variable name, taken in turn with the first (``resilience.key_rotation``)."""

    spec: ModelSpec
    kind: Kind
    base_url: str | None = None
    api_key: SecretStr | None = None  # None: its key variable is unset, or it needs none
    key_variable: str | None = None
    api_version: str | None = None
    timeout_s: float | None = None
    first_token_timeout_s: float | None = None
    more_keys: tuple[tuple[str, SecretStr | None], ...] = ()

    def keyed(self) -> list[Endpoint]:
        """One endpoint per key, the first as it is."""
        others = [replace(self, key_variable=name, api_key=key, more_keys=()) for name, key in self.more_keys]
        return [replace(self, more_keys=()), *others]


@dataclass(frozen=True)
class ModelsCatalog:
    """What a models file declares: deployments by alternative (only those it gives any), the
    alternatives of new names with their default tiers, and the ladder of /fallback and /quality
    if it names one."""

    deployments: Mapping[str, list[Endpoint]] = field(default_factory=dict)
    fallback_ladder: list[str] | None = None
    source: Path | None = None
    new_alternatives: Mapping[str, list[str]] = field(default_factory=dict)  # name -> default tiers


def _capabilities(entry: DeploymentEntry) -> frozenset[str]:
    """As the file lists them; else the local engine's (it continues a prefill) or the remote
    alternatives' (tools and structured output)."""
    if entry.capabilities is not None:
        return frozenset(entry.capabilities)
    return frozenset({PREFILL}) if entry.kind == "local" else REMOTE_CAPABILITIES


def _secret(environ: Mapping[str, str], name: str) -> SecretStr | None:
    value = environ.get(name)
    return SecretStr(value) if value else None


def _endpoint(entry: DeploymentEntry, environ: Mapping[str, str]) -> Endpoint:
    names = entry.key_variables
    first, others = (names[0], names[1:]) if names else (None, [])
    spec = ModelSpec(
        entry.alternative,
        PROVIDERS[entry.kind],
        entry.model,
        _capabilities(entry),
        deployment=entry.endpoint_name,
        weight=entry.weight,
        requests_per_minute=entry.requests_per_minute,
        tokens_per_minute=entry.tokens_per_minute,
        context_window=entry.context_window,
        price_key=entry.price,
    )
    return Endpoint(
        spec,
        entry.kind,
        base_url=entry.base_url,
        api_key=_secret(environ, first) if first else None,
        key_variable=first,
        api_version=entry.api_version,
        timeout_s=entry.timeout_s,
        first_token_timeout_s=entry.first_token_timeout_s,
        more_keys=tuple((name, _secret(environ, name)) for name in others),
    )


def _line_of(text: str, location: tuple[Any, ...]) -> int | None:
    """The line of the table an error's location points into (1-based), when it can be told."""
    if location[:1] == ("deployments",) and len(location) > 1 and isinstance(location[1], int):
        headers = list(_DEPLOYMENT_HEADER.finditer(text))
        if location[1] < len(headers):
            return text.count("\n", 0, headers[location[1]].start()) + 1
    if location[:1] == ("ladders",):
        header = _LADDERS_HEADER.search(text)
        if header is not None:
            return text.count("\n", 0, header.start()) + 1
    return None


def _problems(path: Path, text: str, error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        location = tuple(problem["loc"])
        line = _line_of(text, location)
        where = f"{path}:{line}" if line is not None else str(path)
        field_name = ".".join(str(part) for part in location) or "(file)"
        lines.append(f"{where}: {field_name}: {problem['msg']}")
    return "\n".join(lines)


def _check_names(path: Path, text: str, content: ModelsFileContent) -> None:
    """Every name the file uses is an alternative, built in or declared; each declared one served."""
    known = [*ALTERNATIVES, *content.alternatives]
    for name, rungs in content.ladders.items():
        if not rungs or len(set(rungs)) != len(rungs) or set(rungs) - set(known):
            raise ConfigurationError(
                f"{path}:{_line_of(text, ('ladders',))}: ladders.{name}: give one or more different "
                f"alternatives of {', '.join(known)}"
            )
    for n, entry in enumerate(content.deployments):
        if entry.alternative not in known:
            raise ConfigurationError(
                f"{path}:{_line_of(text, ('deployments', n))}: deployments.{n}.alternative: unknown alternative "
                f"{entry.alternative!r}; use one of {', '.join(known)}, "
                f"or declare it: [alternatives.{entry.alternative}]"
            )
    idle = sorted(set(content.alternatives) - {entry.alternative for entry in content.deployments})
    if idle:
        raise ConfigurationError(
            f"{path}: alternatives {', '.join(idle)} have no deployment: give each [[deployments]]"
        )


def load_models_file(path: Path | None, environ: Mapping[str, str] | None = None) -> ModelsCatalog:
    """The catalog ``path`` declares (an empty one without a file); raises ``ConfigurationError``
    naming the file, the line and what to fix."""
    if path is None:
        return ModelsCatalog()
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as unreadable:
        raise ConfigurationError(f"LLM_SERVER_MODELS_FILE: cannot read {path} ({unreadable})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise ConfigurationError(f"{path}: not valid TOML: {bad}") from None
    try:
        content = ModelsFileContent.model_validate(raw)
    except ValidationError as invalid:
        raise ConfigurationError(f"{path} does not validate:\n{_problems(path, text, invalid)}") from None
    _check_names(path, text, content)
    names: dict[str, int] = {}
    deployments: dict[str, list[Endpoint]] = {}
    for n, entry in enumerate(content.deployments):
        name = entry.endpoint_name
        if name in names:
            line = _line_of(text, ("deployments", n))
            raise ConfigurationError(
                f"{path}:{line}: deployments.{n}.name: {name!r} is the name of deployment {names[name]} too; "
                "give each deployment a name of its own"
            )
        names[name] = n
        endpoint = _endpoint(entry, environ)
        for keyed in endpoint.keyed():
            if keyed.key_variable and keyed.api_key is None:
                logger.warning("%s: %s is unset: deployment %r fails as not configured", path, keyed.key_variable, name)
        deployments.setdefault(entry.alternative, []).append(endpoint)
    ladder = content.ladders.get("fallback")
    if ladder is not None and ladder[-1] != FLOOR:
        logger.warning(
            "%s: the fallback ladder %s does not end at %r: when its models fail, requests fail (503)",
            path,
            ladder,
            FLOOR,
        )
    new = {name: entry.tiers for name, entry in content.alternatives.items()}
    return ModelsCatalog(deployments, ladder, path, new)


def declared_alternatives(path: Path | None) -> dict[str, list[str]]:
    """The alternatives of new names a models file declares, with their default tiers, read
    leniently (for the settings' own checks; ``load_models_file`` reports what is wrong)."""
    if path is None:
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    declared = raw.get("alternatives")
    if not isinstance(declared, dict):
        return {}
    result: dict[str, list[str]] = {}
    for name, table in declared.items():
        tiers = table.get("tiers") if isinstance(table, dict) else None
        if isinstance(tiers, list) and all(isinstance(t, str) for t in tiers):
            result[str(name)] = [str(t) for t in tiers]
        else:
            result[str(name)] = list(EVERY_TIER)
    return result
