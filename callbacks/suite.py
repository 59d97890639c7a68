"""``MonitoringSuite``: the callback handlers and the stores they write, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.callbacks import BaseCallbackHandler

from callbacks.alerts import AlertCallback, AlertHistory, AlertThresholds, LogSink
from callbacks.performance import PerformanceMonitor
from callbacks.pricing import PriceTable
from callbacks.records import CallStore
from settings import Settings


@dataclass
class MonitoringSuite:
    store: CallStore
    history: AlertHistory
    performance: PerformanceMonitor
    alerts: AlertCallback

    @property
    def handlers(self) -> list[BaseCallbackHandler]:
        return [self.performance, self.alerts]

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitoringSuite:
        prices = PriceTable.from_file(settings.price_table_path)
        store = CallStore(settings.monitoring_max_records)
        history = AlertHistory()
        thresholds = AlertThresholds(
            long_prompt_chars=settings.alert_long_prompt_chars,
            slow_response_s=settings.alert_slow_response_s,
            cost_usd=settings.alert_cost_threshold_usd,
        )
        return cls(
            store=store,
            history=history,
            performance=PerformanceMonitor(store, prices),
            alerts=AlertCallback([LogSink(), history], prices, thresholds),
        )
