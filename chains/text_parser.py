"""``TextParser``: LangChain's ``StrOutputParser`` without its trips to the thread pool.

On the async paths LangChain runs a parser's synchronous parse in the default executor: once for
an invoke (``aparse_result``) and once for every streamed chunk (``_atransform``), though for text
the parse is an attribute read. Each trip is a pool task, two wake-ups of the event loop and two
hand-overs of the GIL. Here the parse runs inline: the same output, the same run and callbacks (it
is a ``StrOutputParser``), less server CPU per request and per chunk (``benchmarks/framework_cpu.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, Generation


class TextParser(StrOutputParser):
    async def aparse_result(self, result: list[Generation], *, partial: bool = False) -> str:
        return self.parse_result(result, partial=partial)

    async def aparse(self, text: str) -> str:
        return self.parse(text)

    async def _atransform(self, input: AsyncIterator[str | BaseMessage]) -> AsyncIterator[str]:
        async for chunk in input:
            if isinstance(chunk, BaseMessage):
                yield self.parse_result([ChatGeneration(message=chunk)])
            else:
                yield self.parse_result([Generation(text=chunk)])
