"""The composition root: builds the object graph (monitoring, resilience, policy, shared state, the
local engine, the served chains) from ``Settings`` and hands plain values and small protocols to
the packages below. Only this package, ``server.py`` and the HTTP edge (``api/``, ``dashboard/``)
read settings."""
