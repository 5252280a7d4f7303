"""Reading /metrics in tests: prometheus_client's own parser, samples by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_exposition(text: str) -> Samples:
    """Prometheus text exposition -> {(sample name, labels): value}, read by prometheus_client's
    own parser (which refuses malformed lines); every family must declare its TYPE."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        if family.type == "unknown":
            raise AssertionError(f"{family.name} has no TYPE line")
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
