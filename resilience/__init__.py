"""Resilience: circuit breakers, retries, request deadlines, ladder orders and fault injection.
Nothing here imports FastAPI or LangServe."""
