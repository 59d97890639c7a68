"""The metadata keys the server stamps on a run, each spelled once.

``api.config_guard`` stamps who is calling and what they may use, ``stamp_root_run`` the run id
the client is given, ``chains.policy_applied`` why this model answered, and each ladder rung where
it stands in its ladder. Records and the call store keep these strings, so they never change.
"""

from __future__ import annotations

from typing import Final

# Which request and run (api.config_guard, api.config_guard.stamp_root_run)
REQUEST_ID: Final = "request_id"
ROOT_RUN_ID: Final = "root_run_id"
ROUTE: Final = "route"

# Who is calling (api.config_guard): a keyed caller's owner, or an open server's client label
USER_ID: Final = "user_id"
TIER: Final = "tier"
API_KEY_ID: Final = "api_key_id"
CLIENT_USER_ID: Final = "client_user_id"  # the user_id a keyed client sent, kept apart

# Which budget tag the request charges: a team or project the client names as ``budget_tag`` in
# its metadata and its key may charge (api.config_guard)
BUDGET_TAG: Final = "budget_tag"

# What the caller may use: ``policy.request_policy.Access.as_metadata`` (read back with ``Access.from_metadata``)
ACCESS: Final = "access"

# Why this model, prompt style and temperature were chosen (chains.policy_applied)
ROUTING: Final = "routing"

# The client's own metadata, under one key: apart from everything the server stamps
CLIENT: Final = "client"

# Where a rung's run stands in its ladder (chains.ladder): 0 is the first choice
LADDER: Final = "ladder"
LADDER_RUNG: Final = "ladder_rung"
ALTERNATIVE: Final = "alternative"
DEPLOYMENT: Final = "deployment"  # which of the alternative's deployments (``ModelSpec.endpoint``)
PRICE_KEY: Final = "price_key"  # the deployment's key in the price table, when not its model's name
BREAKER_STATE: Final = "__breaker_state"  # the deployment's breaker as the call starts, for its span only
PROVIDER_KEY: Final = "provider_key"  # the variable holding the key a call used, of a deployment with several
CONTEXT_WINDOW: Final = "context_window"  # the deployment's, in tokens, when its models file gives one

# One try of a ladder rung, so the costs of its calls can be told apart from every other's
# (``resilience.call_costs``): its records' cost settles the try's budget hold and prices a cached answer
CALL_TICKET: Final = "call_ticket"

# Which front door a request came through: LangServe's routes, or the OpenAI-compatible API
DOOR: Final = "door"
LANGSERVE_DOOR: Final = "langserve"
OPENAI_DOOR: Final = "openai"

# The response cache's instructions for a run, decided by the door from the settings, the key and
# the client's Cache-Control header (``caching.cache_switch.CacheDirective``); absent: no caching.
# Its ``reserved_tokens`` are the prompt tokens the run's admission reserved, given back on a hit.
RESPONSE_CACHE: Final = "response_cache"
CACHE_RESERVED_TOKENS: Final = "reserved_tokens"
# On a hit's call record (outcome ``cached``): ``saved_usd``, what the answer cost when it was made, and ``age_s``.
CACHE_HIT: Final = "cache"

# What a request needs of a model beyond text (vocabulary.models.TOOLS, STRUCTURED_OUTPUT)
NEEDS: Final = "needs"

# A rung asked to continue an answer another rung's broken stream left unfinished (chains.ladder):
# which model it continues, at which character of the answer, in which form (``prefill`` or
# ``user_turn``). Kept on the call's record.
CONTINUES: Final = "continues"
# The text the continued answer already has, for the quality gate and the keyword filter, which
# judge the whole answer. The double underscore keeps it out of records.
ANSWER_SO_FAR: Final = "__answer_so_far"

# Chunks of the call's stream that were not valid JSON and were skipped (providers.sse_tolerance):
# in the model's generation info, and on the call's record when there were any.
BAD_CHUNKS: Final = "bad_chunks"

# Passed with a token event (``on_llm_new_token``): how many text chunks it stands for, when the model
# told the callbacks of its chunks in one go (``providers.raw_stream``); absent, one per token with text.
TEXT_CHUNKS: Final = "text_chunks"

# A call cut short before the provider reported its usage: its prompt's tokens on the record are
# estimated (the provider read the whole prompt and bills it), kept on the call's record.
USAGE_ESTIMATED: Final = "usage_estimated"

# The call's trace and span in OpenTelemetry (hex, as trace tools show them), when tracing is on:
# on the call's record, so the dashboard and the records API link to the trace.
TRACE_ID: Final = "trace_id"
SPAN_ID: Final = "span_id"
