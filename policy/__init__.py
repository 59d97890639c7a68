"""Who is calling, what they may use, and which model answers: API keys, tiers, limits, request
policy and adaptive routing."""
