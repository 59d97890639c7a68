"""Runnables built from settings: prompts, model alternatives, fallback ladders, validators.

Nothing here imports FastAPI or LangServe, so any host can serve these chains.
"""
