"""Reading a Herald process's ``/metrics``: samples by name and labels, exported names.

``Scrape.get(url)`` fetches the Prometheus text of one process once;
``value(name, **labels)`` reads one sample (0.0 when absent: a counter
never incremented has no sample), ``series(name)`` every sample of a name,
and ``names()`` every metric name the process exports, whether or not it
has samples yet (histograms with their ``_bucket``/``_count``/``_sum``).
For tests and the bench; it must not hold assertions.
"""

from __future__ import annotations

import dataclasses

import requests
from prometheus_client.parser import text_string_to_metric_families

_SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum"),
             "counter": ("_total",), "gauge": ("",), "info": ("_info",)}


@dataclasses.dataclass
class Scrape:
    """One scrape: ``samples[(name, frozenset(labels.items()))] = value``."""

    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]

    @classmethod
    def get(cls, url: str, timeout: float = 5.0) -> Scrape:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
        return cls.parse(response.text)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return cls(text, samples, types)

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(labels), value) for (sample, labels), value in self.samples.items()
                if sample == name]

    def total(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        return sum(value for sample_labels, value in self.series(name)
                   if all(sample_labels.get(k) == v for k, v in labels.items()))

    def names(self) -> set[str]:
        found = {name for name, _ in self.samples}
        for family, kind in self.types.items():
            found.update(family + suffix for suffix in _SUFFIXES.get(kind, ("",)))
        return found
