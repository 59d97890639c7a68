"""The served chains, each built by a function from its parts (``wiring.chains`` passes them).

- ``chat``: prompt_style x llm_model alternatives (``auto`` included), llm_temperature; the chosen
  model falls back to the local one. ``RequestPolicy`` fills in what the client left out.
- ``adaptive``: the same chain with the model always picked by the adaptive router.
- ``fallback``: the seed's ladder by default: openai (short timeout) -> gemini -> gpt4 -> local;
  its rungs and order strategy are settings.
- ``quality``: the same ladder with the seed's length check (and forbidden words) on every rung but
  the last, which answers whatever it can (graceful degradation beats a 503).

Every ladder shares one ``LadderPolicies``: breakers, retries, the request deadline, the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from annotated_types import Interval
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import ConfigurableField, Runnable, RunnableLambda

from chains.cached_fields import CachedConfigurableFields
from chains.config_schema import FormReadyConfig
from chains.ladder import FallbackLadder
from chains.policy_applied import PolicyApplied
from chains.prompted_text import PromptedText
from chains.prompts import bilingual_prompt, configurable_prompt
from chains.quality import QualityGate
from chains.rungs import Rung
from chains.text_parser import TextParser
from errors import ConfigurationError
from policy.request_policy import RequestPolicy
from resilience.ladder_policies import LadderPolicies
from vocabulary import AUTO, DEFAULT_ALTERNATIVE, DEFAULT_STYLE, LOCAL, MODEL_ID, TEMPERATURE_ID, TEMPERATURE_RANGE

__all__ = ["AUTO", "LOCAL", "build_chains"]

# A plain bounded number: the models' own ``Optional[float]`` becomes ``anyOf: [number, null]``,
# which the LangServe playground cannot render (its page stays blank).
TEMPERATURE = Annotated[float, Interval(ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1])]
TEMPERATURE_FIELD = ConfigurableField(
    id=TEMPERATURE_ID,
    name="LLM temperature",
    description="Sampling temperature, {:g} to {:g}.".format(*TEMPERATURE_RANGE),
    annotation=TEMPERATURE,
)


def model_field(alternatives: Sequence[str]) -> ConfigurableField:
    return ConfigurableField(
        id=MODEL_ID,
        name="LLM model",
        description="Which model answers: " + ", ".join(alternatives) + f"; {AUTO}: the adaptive router picks",
    )


class RungSource(Protocol):
    """Each alternative's rung, its chat model built once so ladders share clients and the local
    engine (``wiring.chains.ModelRungs``); ``alternatives``: every one this server serves (the
    built-in ones and a models file's)."""

    @property
    def alternatives(self) -> Sequence[str]: ...

    def rung(self, alternative: str, *, timeout_s: float | None = None) -> Rung: ...


@dataclass(frozen=True)
class LadderOptions:
    """``rungs``: the alternatives of /fallback and /quality in order; the first gets
    ``primary_timeout_s`` (the seed's short timeout). ``min_chars`` and ``forbidden_words``: the
    quality gate of /quality."""

    rungs: Sequence[str]
    primary_timeout_s: float
    min_chars: int
    forbidden_words: Sequence[str] = ()


def with_temperature(model: BaseChatModel) -> Runnable[Any, Any]:
    """``model`` with the client's ``llm_temperature``, each temperature built once."""
    return CachedConfigurableFields(default=model, fields={"temperature": TEMPERATURE_FIELD})


def _unresolved_auto(_: Any) -> Any:
    raise ConfigurationError(f"{MODEL_ID}={AUTO} reached the model unresolved: serve the chain through PolicyApplied")


def _model_switch(models: RungSource, resilience: LadderPolicies) -> Runnable[Any, Any]:
    """The ladder of the alternative ``llm_model`` names: that model, then the local one."""

    def ladder(alternative: str) -> FallbackLadder:
        rungs = [models.rung(alternative)]
        if alternative != LOCAL:
            rungs.append(models.rung(LOCAL))
        return FallbackLadder(ladder=f"chat:{alternative}", rungs=rungs, resilience=resilience)

    others: dict[str, Any] = {alt: ladder(alt) for alt in models.alternatives if alt != DEFAULT_ALTERNATIVE}
    others[AUTO] = RunnableLambda(_unresolved_auto)  # PolicyApplied always replaces it
    field = model_field(models.alternatives)
    return ladder(DEFAULT_ALTERNATIVE).configurable_alternatives(field, default_key=DEFAULT_ALTERNATIVE, **others)


def _chat_chain(models: RungSource, resilience: LadderPolicies, name: str = "chat") -> Runnable[Any, str]:
    # Named, not bound to a run_name: a binding is one more config merge on every request.
    return PromptedText(prompt=configurable_prompt(), model=_model_switch(models, resilience), name=name)


def build_chat_chain(models: RungSource, resilience: LadderPolicies, policy: RequestPolicy) -> Runnable[Any, str]:
    return PolicyApplied(chain=_chat_chain(models, resilience), policy=policy)


def build_adaptive_chain(models: RungSource, resilience: LadderPolicies, policy: RequestPolicy) -> Runnable[Any, str]:
    chain = _chat_chain(models, resilience, name="adaptive")
    return PolicyApplied(chain=chain, policy=policy, force_auto=True)


def _configured_rungs(models: RungSource, options: LadderOptions) -> list[Rung]:
    first, *rest = options.rungs
    return [models.rung(first, timeout_s=options.primary_timeout_s)] + [models.rung(alt) for alt in rest]


def build_fallback_chain(models: RungSource, resilience: LadderPolicies, options: LadderOptions) -> Runnable[Any, str]:
    rungs = _configured_rungs(models, options)
    ladder = FallbackLadder(ladder="fallback", rungs=rungs, resilience=resilience)
    return FormReadyConfig(bound=PromptedText(prompt=bilingual_prompt(DEFAULT_STYLE), model=ladder, name="fallback"))


def _quality_ladder(
    models: RungSource, resilience: LadderPolicies, options: LadderOptions, *, text: bool
) -> FallbackLadder:
    """The configured ladder with the quality gate on every rung but the last; ``text``: its rungs
    answer with text (the LangServe route), else with the model's message."""
    gate = QualityGate(min_chars=options.min_chars, forbidden_words=list(options.forbidden_words))
    rungs = _configured_rungs(models, options)
    if text:
        rungs = [r.then(TextParser()) for r in rungs]
    checked = [r.then(gate) for r in rungs[:-1]]
    return FallbackLadder(ladder="quality", rungs=[*checked, rungs[-1]], resilience=resilience)


def build_quality_chain(models: RungSource, resilience: LadderPolicies, options: LadderOptions) -> Runnable[Any, str]:
    ladder = _quality_ladder(models, resilience, options, text=True)
    return FormReadyConfig(bound=PromptedText(prompt=bilingual_prompt(DEFAULT_STYLE), model=ladder, name="quality"))


def build_chains(
    models: RungSource, resilience: LadderPolicies, policy: RequestPolicy, options: LadderOptions
) -> dict[str, Runnable[Any, str]]:
    """Every served chain by name; the host decides where each is mounted."""
    return {
        "chat": build_chat_chain(models, resilience, policy),
        "adaptive": build_adaptive_chain(models, resilience, policy),
        "fallback": build_fallback_chain(models, resilience, options),
        "quality": build_quality_chain(models, resilience, options),
    }


def build_message_chains(
    models: RungSource, resilience: LadderPolicies, policy: RequestPolicy, options: LadderOptions
) -> dict[str, Runnable[Any, Any]]:
    """The chains of the OpenAI-compatible door, by route: the same ladders as the LangServe
    routes, taking the client's chat messages as they are (no prompt template) and answering with
    the model's message, whose usage and finish reason the door reports. ``chat`` runs the
    alternative named by ``llm_model`` (``auto`` included) through the request policy, as /chat."""
    chat = _model_switch(models, resilience).with_config(run_name="chat")
    fallback = FallbackLadder(ladder="fallback", rungs=_configured_rungs(models, options), resilience=resilience)
    quality = _quality_ladder(models, resilience, options, text=False)
    return {
        "chat": PolicyApplied(chain=chat, policy=policy),
        "fallback": fallback.with_config(run_name="fallback"),
        "quality": quality.with_config(run_name="quality"),
    }
