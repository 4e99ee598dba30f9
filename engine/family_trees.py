"""Hinton's (1986) family-trees task: two isomorphic families, English and Italian.

Each tree has 12 people over three generations; a query is (person, relation) and
its answer the set of people standing in that relation. Counting every query with
at least one answer gives 52 per tree, 104 in all, as the paper reports; four per
tree (the uncles and the aunts of the two grandchildren) have two answers.
"""

from __future__ import annotations

import numpy as np

RELATIONS = (
    "father",
    "mother",
    "husband",
    "wife",
    "son",
    "daughter",
    "uncle",
    "aunt",
    "brother",
    "sister",
    "nephew",
    "niece",
)

# (name, sex) in a fixed order; the Italian tree lists each person's counterpart
# at the same position.
ENGLISH = (
    ("Christopher", "m"),
    ("Penelope", "f"),
    ("Andrew", "m"),
    ("Christine", "f"),
    ("Margaret", "f"),
    ("Arthur", "m"),
    ("Victoria", "f"),
    ("James", "m"),
    ("Jennifer", "f"),
    ("Charles", "m"),
    ("Colin", "m"),
    ("Charlotte", "f"),
)
ITALIAN = (
    ("Roberto", "m"),
    ("Maria", "f"),
    ("Pierro", "m"),
    ("Francesca", "f"),
    ("Gina", "f"),
    ("Emilio", "m"),
    ("Lucia", "f"),
    ("Marco", "m"),
    ("Angela", "f"),
    ("Tomaso", "m"),
    ("Alfonso", "m"),
    ("Sophia", "f"),
)

# Structure by position in the lists above: couples, and (child, father, mother).
_COUPLES = ((0, 1), (2, 3), (5, 4), (7, 6), (9, 8))  # (husband, wife)
_CHILDREN = ((5, 0, 1), (6, 0, 1), (7, 2, 3), (8, 2, 3), (10, 7, 6), (11, 7, 6))


def _relations(names: tuple[tuple[str, str], ...]) -> dict[tuple[str, str], set[str]]:
    sex = {n: s for n, s in names}
    idx = [n for n, _ in names]
    spouse: dict[str, str] = {}
    for h, w in _COUPLES:
        spouse[idx[h]], spouse[idx[w]] = idx[w], idx[h]
    parents: dict[str, tuple[str, str]] = {idx[c]: (idx[f], idx[m]) for c, f, m in _CHILDREN}
    children = {p: {c for c, ps in parents.items() if p in ps} for p in idx}
    siblings = {
        p: {q for q in idx if q != p and p in parents and parents.get(q) == parents[p]} for p in idx
    }
    out: dict[tuple[str, str], set[str]] = {}

    def add(person: str, relation: str, answers: set[str]) -> None:
        if answers:
            out[(person, relation)] = answers

    for p in idx:
        ps = parents.get(p, ())
        add(p, "father", {q for q in ps if sex[q] == "m"})
        add(p, "mother", {q for q in ps if sex[q] == "f"})
        add(p, "husband", {spouse[p]} if p in spouse and sex[p] == "f" else set())
        add(p, "wife", {spouse[p]} if p in spouse and sex[p] == "m" else set())
        add(p, "son", {c for c in children[p] if sex[c] == "m"})
        add(p, "daughter", {c for c in children[p] if sex[c] == "f"})
        add(p, "brother", {s for s in siblings[p] if sex[s] == "m"})
        add(p, "sister", {s for s in siblings[p] if sex[s] == "f"})
        # parents' siblings and their spouses (uncles and aunts by marriage)
        piblings = {s for q in ps for s in siblings[q]}
        piblings |= {spouse[s] for s in piblings if s in spouse}
        add(p, "uncle", {s for s in piblings if sex[s] == "m"})
        add(p, "aunt", {s for s in piblings if sex[s] == "f"})
        # children of one's own and one's spouse's siblings
        sibs = set(siblings[p]) | (siblings[spouse[p]] if p in spouse else set())
        nibling = {c for s in sibs for c in children[s]}
        add(p, "nephew", {c for c in nibling if sex[c] == "m"})
        add(p, "niece", {c for c in nibling if sex[c] == "f"})
    return out


def family_tree_queries() -> list[tuple[str, str, tuple[str, ...]]]:
    """All (person, relation, answers) of both trees, English first, people in list order."""
    queries = []
    for tree in (ENGLISH, ITALIAN):
        rel = _relations(tree)
        for name, _ in tree:
            for r in RELATIONS:
                if (name, r) in rel:
                    order = [n for n, _ in tree if n in rel[(name, r)]]
                    queries.append((name, r, tuple(order)))
    return queries


def family_trees() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """X (104, 36): person one-hot (24) then relation one-hot (12); Y (104, 24): answers on."""
    people = [n for n, _ in ENGLISH + ITALIAN]
    pos = {n: k for k, n in enumerate(people)}
    queries = family_tree_queries()
    X = np.zeros((len(queries), len(people) + len(RELATIONS)))
    Y = np.zeros((len(queries), len(people)))
    for row, (person, relation, answers) in enumerate(queries):
        X[row, pos[person]] = 1.0
        X[row, len(people) + RELATIONS.index(relation)] = 1.0
        for a in answers:
            Y[row, pos[a]] = 1.0
    return X, Y, people + list(RELATIONS), people
