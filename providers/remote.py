"""The OpenAI and Gemini chat models with the guards of ``providers.guard`` in front: request
deadline, first-token deadline, stalled and cut streams, injected faults."""

from __future__ import annotations

from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from providers.guard import GuardedStream


class GuardedChatOpenAI(GuardedStream, ChatOpenAI):
    pass


class GuardedChatGoogleGenerativeAI(GuardedStream, ChatGoogleGenerativeAI):
    pass
