"""A small Prometheus registry: counters, gauges and histograms rendered as text exposition.

No I/O and no threads: the service updates metrics from its event loop and renders them for
``GET /metrics`` (format 0.0.4, ``text/plain; version=0.0.4``). Collectors registered with
:meth:`Registry.collect` build metrics from other state (the scheduler's counters) at scrape time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Final

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

LabelValues = tuple[str, ...]

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds."""
SIZE_BUCKETS: Final = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


class Metric:
    """A named metric family with fixed label names."""

    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def lines(self) -> Iterable[str]:
        raise NotImplementedError

    def render(self) -> str:
        head = [f"# HELP {self.name} {_escape(self.help)}", f"# TYPE {self.name} {self.kind}"]
        return "\n".join([*head, *self.lines()])


class Counter(Metric):
    """A value that only goes up."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {} if labels else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot go down ({amount})")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def lines(self) -> Iterable[str]:
        for key, value in sorted(self._values.items()):
            yield f"{self.name}{_labels(self.label_names, key)} {format_value(value)}"


class Gauge(Counter):
    """A value that goes up and down."""

    kind = "gauge"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)

    def set(self, value: float, **labels: str) -> None:
        self._values[self._key(labels)] = value


class Histogram(Metric):
    """Counts of observations in cumulative ``le`` buckets, with their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labels)
        if "le" in self.label_names:
            raise ValueError("'le' is reserved for histogram buckets")
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"{name}: buckets must be increasing and non-empty")
        self.buckets = (*(float(b) for b in buckets), math.inf)
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}
        if not labels:
            self._counts[()] = [0] * len(self.buckets)
            self._sums[()] = 0.0

    def observe(self, value: float, count: int = 1, **labels: str) -> None:
        """Record ``value`` (``count`` times)."""
        key = self._key(labels)
        counts = self._counts.setdefault(key, [0] * len(self.buckets))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += count
                break
        self._sums[key] = self._sums.get(key, 0.0) + value * count

    def lines(self) -> Iterable[str]:
        for key, counts in sorted(self._counts.items()):
            cumulative = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                cumulative += n
                names = (*self.label_names, "le")
                values = (*key, format_value(bound))
                yield f"{self.name}_bucket{_labels(names, values)} {cumulative}"
            label_text = _labels(self.label_names, key)
            yield f"{self.name}_sum{label_text} {format_value(self._sums[key])}"
            yield f"{self.name}_count{label_text} {cumulative}"


class Registry:
    """Metrics by name, rendered in registration order; collectors add metrics per scrape."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._collectors: list[Callable[[], Iterable[Metric]]] = []

    def _add(self, metric: Metric) -> None:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is already registered")
        self._metrics[metric.name] = metric

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        metric = Counter(name, help_text, labels)
        self._add(metric)
        return metric

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        metric = Gauge(name, help_text, labels)
        self._add(metric)
        return metric

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        metric = Histogram(name, help_text, labels, buckets)
        self._add(metric)
        return metric

    def collect(self, collector: Callable[[], Iterable[Metric]]) -> None:
        """Call ``collector`` at every render for metrics built from other state."""
        self._collectors.append(collector)

    def render(self) -> str:
        metrics = list(self._metrics.values())
        for collector in self._collectors:
            metrics.extend(collector())
        return "\n".join(m.render() for m in metrics) + "\n"


class ServiceMetrics:
    """The websocket service's metrics (names documented in docs/protocol.md)."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        r = self.registry
        self.sessions_active = r.gauge(
            "asr_sessions_active", "Websocket sessions open now.", ["protocol"]
        )
        self.sessions_total = r.counter(
            "asr_sessions_total", "Websocket sessions opened.", ["protocol"]
        )
        self.audio_seconds = r.counter(
            "asr_audio_seconds_total", "Seconds of audio received from clients."
        )
        self.partial_latency = r.histogram(
            "asr_partial_latency_seconds",
            "From receiving the frame that completed a window to sending its partial.",
        )
        self.final_latency = r.histogram(
            "asr_final_latency_seconds",
            "From receiving the frame (or stop) that ended a segment to sending its final.",
        )
        self.lag_events = r.counter(
            "asr_lag_events_total", "Streams that fell behind real time (lagging messages)."
        )
        self.errors = r.counter(
            "asr_errors_total", "Sessions ended by an error, by error code.", ["code"]
        )
        self.rejected = r.counter(
            "asr_http_rejections_total", "Websocket upgrades refused, by HTTP status.", ["status"]
        )
        for protocol in ("v1", "vosk"):
            self.sessions_active.set(0, protocol=protocol)
            self.sessions_total.inc(0, protocol=protocol)

    # -- the events the service reports (the one interface the service and sessions use) ------

    def session_opened(self, protocol: str) -> None:
        self.sessions_total.inc(protocol=protocol)
        self.sessions_active.inc(protocol=protocol)

    def session_closed(self, protocol: str) -> None:
        self.sessions_active.dec(protocol=protocol)

    def audio_received(self, seconds: float) -> None:
        self.audio_seconds.inc(seconds)

    def partial_sent(self, latency_s: float) -> None:
        self.partial_latency.observe(latency_s)

    def final_sent(self, latency_s: float) -> None:
        self.final_latency.observe(latency_s)

    def lagged(self) -> None:
        self.lag_events.inc()

    def session_error(self, code: str) -> None:
        self.errors.inc(code=code)

    def upgrade_rejected(self, status: int) -> None:
        self.rejected.inc(status=str(status))

    def render(self) -> str:
        return self.registry.render()
