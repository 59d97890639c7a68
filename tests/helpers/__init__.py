"""Helpers shared by the test tiers; test modules import from here, never from each other.

apps: settings and apps on the provider double, policy kits, records of a request, SSE parsing.
browser: Debian's Chromium under Playwright. clock: a fake clock. engine: an engine of a test's
own. files: file faults. keys: API keys and tiers. mail: an SMTP inbox. processes: server.py,
redis-server, uvicorn, free ports. provider_double: OpenAI and Gemini over HTTP. receivers:
webhook and trace receivers. records: call records and alerts.
"""
