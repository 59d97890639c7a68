"""``CallCosts``: what each try of a ladder rung cost, from its calls' records.

The ladder opens a ticket for each try and stamps it on the try's run (``CALL_TICKET``); the
records of the calls it made add their cost to it, and the ladder closes it when the try ends (to
settle the try's budget hold, and to price an answer it caches). A record whose ticket is not
open (a call that ended after its try, or ran outside a ladder) goes to the ``late`` listeners.

State: the open tickets, each closed by the try that opened it; bounded all the same, the oldest
dropped past ``capacity``. Records come on the event loop, so no lock is needed.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal

from vocabulary.records import CallRecord
from vocabulary.run_metadata import CALL_TICKET


class CallCosts:
    def __init__(self, *, capacity: int = 10_000):
        self._open: OrderedDict[str, Decimal | None] = OrderedDict()
        self._capacity = capacity
        self.late: list[Callable[[CallRecord], None]] = []

    def __len__(self) -> int:
        return len(self._open)

    def open(self) -> str:
        ticket = uuid.uuid4().hex
        self._open[ticket] = None
        while len(self._open) > self._capacity:
            self._open.popitem(last=False)
        return ticket

    def observe(self, record: CallRecord) -> None:
        ticket = record.metadata.get(CALL_TICKET)
        if isinstance(ticket, str) and ticket in self._open:
            if record.cost_usd is not None:
                self._open[ticket] = (self._open[ticket] or Decimal(0)) + record.cost_usd
            return
        for listener in self.late:
            listener(record)

    def close(self, ticket: str | None) -> Decimal | None:
        """The cost of the ticket's calls (None: none was priced), and the ticket is closed."""
        return None if ticket is None else self._open.pop(ticket, None)
