"""Toy retrieval data for the embedding and reranker tests, and a server run in this process."""
import json
import random


# Embedding toy: an anchor "key filler" matches the document "key other-filler". Held-out pairs are combinations never
# trained on, built so that each anchor's filler ends a wrong document: an untrained model, which leans on the last
# words, ranks that one first; a trained one has learnt that the key decides.
KEYS = 'model answer question assistant language data robot team world swift reason thanks'.split()
FILLERS = 'hello name what your can this that with from for and think'.split()
HELD_OUT = [(f'{KEYS[i]} {FILLERS[i]}', f'{KEYS[i]} {FILLERS[(i + 1) % len(KEYS)]}') for i in range(len(KEYS))]

# Reranker toy: relevant documents carry a word of RELEVANT, irrelevant ones a word of IRRELEVANT, whatever the
# query; held-out queries are words no training row has.
RELEVANT = 'model answer question assistant language data'.split()
IRRELEVANT = 'hello name what your can this'.split()
TRAIN_QUERIES = 'robot team world swift reason thanks think'.split()
HELD_OUT_QUERIES = 'first then because so please'.split()


def write_jsonl(path, rows: list[dict]) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')
    return str(path)


def embedding_rows(repeats: int = 6, seed: int = 0) -> list[dict]:
    rng, held = random.Random(seed), set(HELD_OUT)
    rows = []
    for _ in range(repeats):
        for key in KEYS:
            while True:
                anchor, positive = (f'{key} {filler}' for filler in rng.sample(FILLERS, 2))
                if (anchor, positive) not in held:
                    break
            rows.append({'messages': [{'role': 'user', 'content': anchor}],
                         'positive_messages': [[{'role': 'user', 'content': positive}]]})
    return rows


def reranker_rows(repeats: int = 2, negatives: int = 3, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    doc = lambda word: [{'role': 'assistant', 'content': f'{word} {rng.choice(TRAIN_QUERIES)}'}]  # noqa: E731
    rows = []
    for _ in range(repeats):
        for query in TRAIN_QUERIES:
            for word in rng.sample(RELEVANT, 2):
                rows.append({'messages': [{'role': 'user', 'content': f'{query} {rng.choice(TRAIN_QUERIES)}'}],
                             'positive_messages': [doc(word)],
                             'negative_messages': [doc(w) for w in rng.sample(IRRELEVANT, negatives)]})
    return rows


def recall_at_1(engine) -> float:
    """Held-out anchors whose own document is the nearest of all held-out documents."""
    vectors, _ = engine.retrieval.embed([[{'role': 'user', 'content': text}] for pair in HELD_OUT for text in pair])
    anchors, docs = vectors[0::2], vectors[1::2]
    hits = 0
    for i, anchor in enumerate(anchors):
        sims = [sum(a * b for a, b in zip(anchor, doc)) for doc in docs]
        hits += max(range(len(docs)), key=sims.__getitem__) == i
    return hits / len(anchors)


def ordering_accuracy(engine) -> float:
    """Share of (held-out query, relevant document, irrelevant document) triples ranked in that order."""
    right = total = 0
    for query in HELD_OUT_QUERIES:
        docs = [[{'role': 'assistant', 'content': f'{word} {query}'}] for word in RELEVANT + IRRELEVANT]
        scores, _ = engine.retrieval.rerank([{'role': 'user', 'content': query}], docs)
        good, bad = scores[:len(RELEVANT)], scores[len(RELEVANT):]
        right += sum(g > b for g in good for b in bad)
        total += len(good) * len(bad)
    return right / total
