"""The response cache: an exact-match cache of the ladders' answers, off by default and switched
on per tier, per API key or per request (``Cache-Control``).

    door: CacheSwitch.decide -> CacheDirective, stamped in the run's metadata (RESPONSE_CACHE)
    ladder: ResponseCache.lookup -> hit (the answer, its record, no model call) | miss | bypass
            ResponseCache.remember (a fresh answer) -> AnswerStore (SQLite file, or Redis)

``cache_key`` says what makes two requests the same; ``cached_answer`` how an answer is kept and
given back (whole, or as a stream's chunks).
"""
