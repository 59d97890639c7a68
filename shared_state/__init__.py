"""State that replicas share through Redis when ``REDIS_URL`` is set: breaker states, cumulative
spend, alert dedupe, rate limits and routing statistics. Without Redis, or while it is away,
each process runs on its own memory (the embedded default) and says so with an alert."""
