"""``StyleSchedule``: the prompt style by time of day (the seed's exercise), in the server's
timezone. Written as hour ranges, e.g. ``07-23=default,23-07=concise``; a range
may wrap past midnight, and hours no range covers get ``default``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from vocabulary import DEFAULT_STYLE, PROMPT_STYLES


@dataclass(frozen=True)
class StyleSchedule:
    by_hour: tuple[str, ...]  # 24 entries, the style of each hour
    timezone: ZoneInfo

    @classmethod
    def parse(cls, text: str, timezone: str) -> StyleSchedule:
        by_hour = [DEFAULT_STYLE] * 24
        for part in filter(None, (p.strip() for p in text.split(","))):
            hours, _, style = part.partition("=")
            start, _, end = hours.partition("-")
            if style not in PROMPT_STYLES or not (start.isdigit() and end.isdigit()):
                raise ValueError(f"{part!r}: write HH-HH=style with style one of {', '.join(PROMPT_STYLES)}")
            first, stop = int(start), int(end)
            if not (0 <= first <= 23 and 0 <= stop <= 24):
                raise ValueError(f"{part!r}: hours run from 00 to 24")
            hour = first
            while True:
                by_hour[hour] = style
                hour = (hour + 1) % 24
                if hour == stop % 24:
                    break
        return cls(tuple(by_hour), ZoneInfo(timezone))

    def style_at(self, moment: datetime) -> str:
        return self.by_hour[moment.astimezone(self.timezone).hour]
