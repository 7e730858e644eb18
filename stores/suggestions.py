"""Suggestions for a ticket: the knowledge base's FAQ entries and scripts that
fit its words, ranked by two retrievers fused, with the reason each matched.

- Lexical: jieba segments Chinese (and splits English into words); BM25 (bm25s) ranks the
  entries' text in all three locales.
- Semantic: Google's USE-multilingual embeddings (activities.classifier.embed): a
  zh-Hant question lands near a zh-Hans answer, and English near both.
- The two rankings are fused by reciprocal rank, and scripts used more often on tickets
  of the same category and topic rank a little higher.

Built in the API process (never in workflow code), and rebuilt when the base changes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass

import bm25s
import jieba
import numpy as np
from pydantic import BaseModel

from activities.classifier import embed
from stores.knowledge import LOCALES, Entry, KnowledgeStore, locale_of

jieba.setLogLevel(60)  # its start-up chatter would land in the JSON log
logging.getLogger("bm25s").setLevel(logging.WARNING)  # one debug line per index build
_WORD = re.compile(r"\w", re.UNICODE)
# Reciprocal-rank fusion's constant (the usual 60): ranks, not raw scores, are fused.
_RRF = 60
_SEMANTIC_FLOOR = 0.35


# Words that say nothing about what a ticket is about.
_STOP = frozenset(
    [
        "的",
        "了",
        "我",
        "你",
        "您",
        "被",
        "是",
        "吗",
        "嗎",
        "呢",
        "啊",
        "吧",
        "都",
        "也",
        "就",
        "還",
        "还",
        "在",
        "有",
        "和",
        "a",
        "an",
        "the",
        "to",
        "of",
        "in",
        "into",
        "on",
        "my",
        "i",
        "me",
        "is",
        "are",
        "was",
        "it",
        "for",
        "and",
        "or",
        "do",
        "does",
        "can",
        "how",
        "what",
    ]
)


def tokens(text: str) -> list[str]:
    return [
        t.lower() for t in jieba.lcut_for_search(text) if _WORD.search(t) and t.lower() not in _STOP
    ]


class Suggestion(BaseModel):
    entry_id: str
    kind: str
    score: float
    reason: str
    title: str
    answer: str
    matched_words: list[str]
    similarity: float
    uses: int


@dataclass
class KnowledgeIndex:
    entries: list[Entry]
    retriever: bm25s.BM25 | None
    vectors: np.ndarray  # (entries, locales, 512)
    words: list[set[str]]

    @classmethod
    def build(cls, entries: list[Entry]) -> KnowledgeIndex:
        texts = [
            " ".join(
                f"{e.variants[loc].question} {e.variants[loc].answer} {' '.join(e.tags)}"
                for loc in LOCALES
            )
            for e in entries
        ]
        corpus = [tokens(text) for text in texts]
        retriever = None
        if entries:
            retriever = bm25s.BM25()
            retriever.index(corpus, show_progress=False)
        sentences = [
            f"{e.variants[loc].question} {e.variants[loc].answer}"
            for e in entries
            for loc in LOCALES
        ]
        vectors = (
            embed(sentences).reshape(len(entries), len(LOCALES), -1)
            if entries
            else np.zeros((0, 3, 512))
        )
        return cls(entries, retriever, vectors, [set(c) for c in corpus])

    def suggest(
        self, text: str, locale: str | None, k: int, uses: dict[str, int]
    ) -> list[Suggestion]:
        if not self.entries:
            return []
        query = tokens(text)
        n = len(self.entries)
        lexical = np.zeros(n)
        if query and self.retriever is not None:
            found, scores = self.retriever.retrieve([query], k=n, show_progress=False)
            for index, score in zip(found[0], scores[0], strict=True):
                lexical[int(index)] = float(score)
        semantic = (self.vectors @ embed([text])[0]).max(axis=1)
        lexical_rank = {int(i): r for r, i in enumerate(np.argsort(-lexical)) if lexical[i] > 0}
        semantic_rank = {
            int(i): r for r, i in enumerate(np.argsort(-semantic)) if semantic[i] >= _SEMANTIC_FLOOR
        }
        chosen = locale_of(locale)
        out: list[Suggestion] = []
        for i, entry in enumerate(self.entries):
            if i not in lexical_rank and i not in semantic_rank:
                continue
            used = uses.get(entry.entry_id, 0)
            score = sum(1 / (_RRF + rank[i]) for rank in (lexical_rank, semantic_rank) if i in rank)
            score += 0.002 * math.log1p(used)
            matched = sorted(set(query) & self.words[i], key=len, reverse=True)[:5]
            reason = [f"words: {', '.join(matched)}"] if matched else []
            reason.append(f"meaning {semantic[i]:.2f}")
            if used:
                reason.append(f"used {used}x on tickets like this")
            variant = entry.variants[chosen]
            out.append(
                Suggestion(
                    entry_id=entry.entry_id,
                    kind=entry.kind,
                    score=round(score, 5),
                    reason=" · ".join(reason),
                    title=variant.question,
                    answer=variant.answer,
                    matched_words=matched,
                    similarity=round(float(semantic[i]), 3),
                    uses=used,
                )
            )
        return sorted(out, key=lambda s: -s.score)[:k]


class Suggester:
    """The index of one process, rebuilt (off the event loop) when the base changes."""

    def __init__(self, store: KnowledgeStore) -> None:
        self._store = store
        self._index: KnowledgeIndex | None = None
        self._generation: tuple[int, int] | None = None
        self._lock = asyncio.Lock()

    async def index(self) -> KnowledgeIndex:
        generation = await self._store.generation()
        async with self._lock:
            if self._index is None or generation != self._generation:
                entries = await self._store.entries()
                self._index = await asyncio.to_thread(KnowledgeIndex.build, entries)
                self._generation = generation
            return self._index

    async def suggest(
        self, text: str, locale: str | None, category: str, topic: str, k: int
    ) -> list[Suggestion]:
        index = await self.index()
        uses = await self._store.script_uses(category, topic)
        return await asyncio.to_thread(index.suggest, text, locale, k, uses)
