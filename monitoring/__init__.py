"""The domain of watching LLM calls: the call store, alert rules, the alert engine and its sinks,
metrics, pricing and spend. Fed by the callback handlers in ``callbacks/``; knows nothing of
LangChain callbacks, HTTP or settings."""
