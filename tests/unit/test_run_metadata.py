"""Typed run metadata: ``Access`` goes into a run's metadata and comes back out the same."""

from __future__ import annotations

from policy.request_policy import Access
from policy.tiers import default_tiers
from vocabulary.run_metadata import ACCESS, TIER


def test_access_round_trips_through_the_metadata_the_server_stamps() -> None:
    tiers = default_tiers()
    for name, tier in tiers.items():
        access = Access.of_tier(name, tier, ["llm_temperature", "llm_model"])
        metadata = {TIER: name, ACCESS: access.as_metadata()}

        assert Access.from_metadata(metadata) == access


def test_no_access_stamped_is_none() -> None:
    assert Access.from_metadata({}) is None
    assert Access.from_metadata({TIER: "free"}) is None
    assert Access.from_metadata({ACCESS: None}) is None


def test_the_stamped_keys_keep_their_stored_strings() -> None:
    import vocabulary.run_metadata as keys

    stamped = {name: value for name, value in vars(keys).items() if name.isupper()}
    assert stamped == {
        "REQUEST_ID": "request_id",
        "ROOT_RUN_ID": "root_run_id",
        "ROUTE": "route",
        "USER_ID": "user_id",
        "TIER": "tier",
        "API_KEY_ID": "api_key_id",
        "CLIENT_USER_ID": "client_user_id",
        "ACCESS": "access",
        "ROUTING": "routing",
        "CLIENT": "client",
        "LADDER": "ladder",
        "LADDER_RUNG": "ladder_rung",
        "ALTERNATIVE": "alternative",
        "DEPLOYMENT": "deployment",
        "PRICE_KEY": "price_key",
        "PROVIDER_KEY": "provider_key",
        "CONTEXT_WINDOW": "context_window",
        "DOOR": "door",
        "LANGSERVE_DOOR": "langserve",
        "OPENAI_DOOR": "openai",
        "NEEDS": "needs",
        "CONTINUES": "continues",
        "ANSWER_SO_FAR": "__answer_so_far",
        "BAD_CHUNKS": "bad_chunks",
        "BUDGET_TAG": "budget_tag",
        "CALL_TICKET": "call_ticket",
        "USAGE_ESTIMATED": "usage_estimated",
        "RESPONSE_CACHE": "response_cache",
        "CACHE_RESERVED_TOKENS": "reserved_tokens",
        "CACHE_HIT": "cache",
        "BREAKER_STATE": "__breaker_state",
        "TRACE_ID": "trace_id",
        "SPAN_ID": "span_id",
        "TEXT_CHUNKS": "text_chunks",
    }
