"""Part 7: the agents' knowledge (issue 12). In this process, no server needed:
- suggestion latency for a ticket (BM25 over jieba tokens + USE similarity, fused), on the
  shipped starter set and on a base 20 times its size;
- the learned classifier's latency per ticket;
- the memory the model and the sentence encoder take (resident set growth).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from importlib import resources

from activities.classifier import Classifier, builtin_examples, embed
from stores.knowledge import Entry, starter_entries
from stores.suggestions import KnowledgeIndex


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class KnowledgeFigures:
    queries: int
    starter_entries: int
    starter_p50_ms: float
    starter_p99_ms: float
    large_entries: int
    large_p50_ms: float
    large_p99_ms: float
    build_large_s: float
    classify_p50_ms: float
    classify_p99_ms: float
    encoder_mib: float
    model_mib: float
    train_s: float


def measure(queries: int = 200) -> KnowledgeFigures:
    texts_file = resources.files("activities").joinpath("data/zh_examples.csv")
    with texts_file.open(encoding="utf-8") as file:
        texts = [row["text"] for row in csv.DictReader(file)][:queries]
    before = rss_mib()
    embed(["warm up"])
    encoder = rss_mib() - before

    starter = [Entry(**e.model_dump()) for e in starter_entries()]
    small = KnowledgeIndex.build(starter)
    large_entries = [
        e.model_copy(update={"entry_id": f"{e.entry_id}-{n}"}) for n in range(20) for e in starter
    ]
    started = time.perf_counter()
    large = KnowledgeIndex.build(large_entries)
    build_large = time.perf_counter() - started

    def timed(index: KnowledgeIndex) -> list[float]:
        times = []
        for text in texts:
            started = time.perf_counter()
            index.suggest(text, "zh-CN", 5, {})
            times.append((time.perf_counter() - started) * 1000)
        return times

    small_times, large_times = timed(small), timed(large)

    before = rss_mib()
    started = time.perf_counter()
    model = Classifier.fit(builtin_examples())
    train = time.perf_counter() - started
    model_mib = rss_mib() - before
    classify = []
    for text in texts:
        started = time.perf_counter()
        model.predict([text])
        classify.append((time.perf_counter() - started) * 1000)
    return KnowledgeFigures(
        queries=len(texts),
        starter_entries=len(starter),
        starter_p50_ms=percentile(small_times, 50),
        starter_p99_ms=percentile(small_times, 99),
        large_entries=len(large_entries),
        large_p50_ms=percentile(large_times, 50),
        large_p99_ms=percentile(large_times, 99),
        build_large_s=build_large,
        classify_p50_ms=percentile(classify, 50),
        classify_p99_ms=percentile(classify, 99),
        encoder_mib=encoder,
        model_mib=model_mib,
        train_s=train,
    )
