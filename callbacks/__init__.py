"""Server-side callback handlers: each observes LLM calls for one concern and never changes an
answer. Their state is keyed by run id, so concurrent calls never mix."""
