"""Log filters that keep the server's log safe whatever clients send.

``asr-server`` installs them on its one log handler (:func:`install`), so they apply to every
logger, websockets' DEBUG request and header lines included:

* :class:`RedactFilter`: bearer tokens (``Authorization`` headers, ``?token=`` query values,
  ``Bearer ...`` and the configured token itself) become ``[redacted]``;
* :class:`TruncateFilter`: each interpolated value is cut to :data:`MAX_VALUE_CHARS`, the message to
  :data:`MAX_MESSAGE_CHARS` and a traceback to :data:`MAX_TRACEBACK_CHARS`;
* :class:`RateLimitFilter`: a token bucket per logger and message template; what it drops is
  counted and reported as one ``suppressed N`` line per template every :data:`REPORT_EVERY_S`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

MAX_VALUE_CHARS = 200
"""Longest value interpolated into a log message (a client-supplied string, a path...)."""
MAX_MESSAGE_CHARS = 1000
MAX_TRACEBACK_CHARS = 8000
REDACTED = "[redacted]"
RATE_PER_S = 20.0
"""Records per second each (logger, template) may write once its burst is spent."""
BURST = 200
REPORT_EVERY_S = 10.0
MAX_KEYS = 2000
"""Templates tracked at once (a logger fed f-strings has one per value)."""

_SECRETS = (
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^\r\n'\",;]+"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)([?&;]token=)[^&#\s'\"]*"),
    re.compile(r"(?i)(['\"]?token['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9._~+/=-]+"),
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with tokens and Authorization values replaced by ``[redacted]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


def _render(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):  # a malformed call: keep what was given, readable
        return f"{record.msg!r} % {record.args!r}"


def _map_args(record: logging.LogRecord, change: Callable[[object], object]) -> None:
    args = record.args
    if isinstance(args, tuple):
        record.args = tuple(change(a) for a in args)
    elif isinstance(args, dict):
        record.args = {k: change(v) for k, v in args.items()}


def _short_arg(value: object) -> object:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = value if isinstance(value, str) else repr(value)
    return value if len(text) <= MAX_VALUE_CHARS else shorten(text, MAX_VALUE_CHARS)


def _traceback(record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    return record.exc_text


class RedactFilter(logging.Filter):
    """Removes bearer tokens from the message, its values and the traceback of every record.

    Values are redacted one by one (so a later :class:`TruncateFilter` can still cut them);
    when the rendered message still shows a secret (a header name in the template, its value in
    an argument) the rendered, redacted message replaces template and values.
    """

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, self.secrets)
        _map_args(record, lambda a: redact(a, self.secrets) if isinstance(a, str) else a)
        rendered = _render(record)
        clean = redact(rendered, self.secrets)
        if clean != rendered:
            record.msg, record.args = clean, None
        text = _traceback(record)
        if text:
            record.exc_text = redact(text, self.secrets)
        return True


class TruncateFilter(logging.Filter):
    """Bounds every record: each value, the message and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        _map_args(record, _short_arg)
        record.msg, record.args = shorten(_render(record), MAX_MESSAGE_CHARS), None
        text = _traceback(record)
        if text:
            record.exc_text = shorten(text, MAX_TRACEBACK_CHARS)
        return True


@dataclass
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    """At most ``burst`` records, then ``rate`` per second, per (logger, message template).

    Dropped records are counted; every ``report_every_s`` (checked when any record passes) one
    WARNING per template says how many were suppressed, through ``emit`` (the handler's
    ``handle``), so a flood of one kind of line costs a bounded number of lines.
    """

    def __init__(
        self,
        rate: float = RATE_PER_S,
        burst: int = BURST,
        report_every_s: float = REPORT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[logging.LogRecord], object] | None = None,
    ) -> None:
        super().__init__()
        self.rate = rate
        self.burst = burst
        self.report_every_s = report_every_s
        self.clock = clock
        self.emit = emit
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._next_report = clock() + report_every_s
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "rate_limit_report", False):
            return True
        with self._lock:
            allowed = self._take(record)
            reports = self._due_reports()
        if self.emit is not None:
            for report in reports:
                self.emit(report)
        return allowed

    def suppressed(self) -> int:
        """Records dropped and not yet reported."""
        with self._lock:
            return sum(b.suppressed for b in self._buckets.values())

    def _take(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        key = (record.name, str(record.msg)[:MAX_VALUE_CHARS])
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        bucket.suppressed += 1
        return False

    def _due_reports(self) -> list[logging.LogRecord]:
        now = self.clock()
        if now < self._next_report:
            return []
        self._next_report = now + self.report_every_s
        reports = []
        for (name, template), bucket in self._buckets.items():
            if bucket.suppressed:
                reports.append(_report_record(name, template, bucket.suppressed))
                bucket.suppressed = 0
        return reports

    def _forget_idle(self, now: float) -> None:
        """Forget buckets that are full again and have nothing to report (or all, if none)."""
        idle = [
            k
            for k, b in self._buckets.items()
            if not b.suppressed and b.tokens + (now - b.updated) * self.rate >= self.burst
        ]
        for key in idle or list(self._buckets):
            del self._buckets[key]


def _report_record(name: str, template: str, count: int) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": name,
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "suppressed %d log records like %r (rate limit)",
            "args": (count, shorten(template, 100)),
            "rate_limit_report": True,
        }
    )


def install(handler: logging.Handler, secrets: tuple[str, ...] = ()) -> RateLimitFilter:
    """Put the three filters on ``handler``: the rate limit first (a dropped record costs a
    dictionary lookup), then redaction (on whole values), then truncation."""
    limiter = RateLimitFilter(emit=handler.handle)
    handler.addFilter(limiter)
    handler.addFilter(RedactFilter(secrets))
    handler.addFilter(TruncateFilter())
    return limiter
