"""Regular expressions as automata over a small alphabet, to reason about them exactly.

`phones.py` uses this to *prove*, from libphonenumber's own metadata patterns, how many leading
digits of a number decide every regular-expression test that phonenumbers makes on it. Python's
own regex parser (`re._parser`) gives the syntax tree; a Thompson NFA over the alphabet is built
from it and determinised lazily. Only the constructs the metadata uses are supported (literals,
classes, ranges, `\\d`, groups, alternation, bounded and unbounded repeats, `^`/`$`); anything else
raises `Unsupported`, and the caller then falls back to phonenumbers per number.

Two questions are answered, both exactly:

* full match (`re.fullmatch`): for a DFA state reached after some prefix and `m` characters still
  to come, is the answer already the same for every continuation (`verdict`)?
* prefix match (`re.match`): after some prefix, is the NFA state set empty (`is_dead`)? A
  backtracking matcher only reads a character while some thread is alive at that position, so once
  the set is empty the match object (its end and groups) cannot depend on later characters.
"""

from __future__ import annotations

import re
import re._constants as sre_c  # Python 3.11+: the parser behind re.compile
import re._parser as sre_p
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DIGITS = "0123456789"

NONE = 0
ALL = 1
MIXED = 2

DEAD = frozenset[int]()


class Unsupported(Exception):
    """A pattern uses a construct this module does not model."""


@dataclass
class _Nfa:
    alphabet: str
    #: Per state: list of (chars, target) edges consuming one character.
    edges: list[list[tuple[frozenset[str], int]]] = field(default_factory=list)
    #: Per state: epsilon targets.
    eps: list[list[int]] = field(default_factory=list)
    #: Per state: epsilon targets allowed only at the end of the input (`$`).
    eps_end: list[list[int]] = field(default_factory=list)

    def new(self) -> int:
        self.edges.append([])
        self.eps.append([])
        self.eps_end.append([])
        return len(self.edges) - 1


def _category_chars(cat: Any, alphabet: str) -> set[str]:
    probes = {
        sre_c.CATEGORY_DIGIT: r"\d", sre_c.CATEGORY_NOT_DIGIT: r"\D",
        sre_c.CATEGORY_SPACE: r"\s", sre_c.CATEGORY_NOT_SPACE: r"\S",
        sre_c.CATEGORY_WORD: r"\w", sre_c.CATEGORY_NOT_WORD: r"\W",
    }
    if cat not in probes:
        raise Unsupported(f"category {cat}")
    rx = re.compile(probes[cat])
    return {c for c in alphabet if rx.fullmatch(c)}


def _literal_chars(code: int, alphabet: str, ignore_case: bool) -> set[str]:
    ch = chr(code)
    if ignore_case:
        return {c for c in alphabet if c.lower() == ch.lower() or c.upper() == ch.upper()}
    return {ch} & set(alphabet)


def _class_chars(items: Any, alphabet: str, ignore_case: bool) -> frozenset[str]:
    chars: set[str] = set()
    negate = False
    for op, av in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op is sre_c.LITERAL:
            chars |= _literal_chars(av, alphabet, ignore_case)
        elif op is sre_c.RANGE:
            lo, hi = av
            chars |= {c for c in alphabet if lo <= ord(c) <= hi
                      or (ignore_case
                          and (lo <= ord(c.lower()) <= hi or lo <= ord(c.upper()) <= hi))}
        elif op is sre_c.CATEGORY:
            chars |= _category_chars(av, alphabet)
        else:
            raise Unsupported(f"class item {op}")
    return frozenset(set(alphabet) - chars if negate else chars)


class _Builder:
    def __init__(self, alphabet: str, ignore_case: bool) -> None:
        self.nfa = _Nfa(alphabet)
        self.ignore_case = ignore_case

    def seq(self, items: Iterable[Any], start: int) -> int:
        cur = start
        for op, av in items:
            cur = self.node(op, av, cur)
        return cur

    def node(self, op: Any, av: Any, start: int) -> int:
        nfa = self.nfa
        if op is sre_c.LITERAL or op is sre_c.NOT_LITERAL or op is sre_c.IN or op is sre_c.ANY:
            if op is sre_c.LITERAL:
                chars = frozenset(_literal_chars(av, nfa.alphabet, self.ignore_case))
            elif op is sre_c.NOT_LITERAL:
                chars = frozenset(set(nfa.alphabet)
                                  - _literal_chars(av, nfa.alphabet, self.ignore_case))
            elif op is sre_c.IN:
                chars = _class_chars(av, nfa.alphabet, self.ignore_case)
            else:
                chars = frozenset(c for c in nfa.alphabet if c != "\n")
            end = nfa.new()
            if chars:
                nfa.edges[start].append((chars, end))
            return end
        if op is sre_c.BRANCH:
            end = nfa.new()
            for alt in av[1]:
                a = nfa.new()
                nfa.eps[start].append(a)
                nfa.eps[self.seq(alt, a)].append(end)
            return end
        if op is sre_c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if (add_flags or del_flags) & ~(re.UNICODE | re.IGNORECASE):
                raise Unsupported("inline flags")
            saved = self.ignore_case
            if add_flags & re.IGNORECASE:
                self.ignore_case = True
            if del_flags & re.IGNORECASE:
                self.ignore_case = False
            end = self.seq(sub, start)
            self.ignore_case = saved
            return end
        if op is sre_c.MAX_REPEAT or op is sre_c.MIN_REPEAT or op is getattr(
                sre_c, "POSSESSIVE_REPEAT", object()):
            lo, hi, sub = av
            cur = start
            for _ in range(lo):
                cur = self.seq(sub, cur)
            if hi is sre_c.MAXREPEAT:
                loop = nfa.new()
                nfa.eps[cur].append(loop)
                body_end = self.seq(sub, loop)
                nfa.eps[body_end].append(loop)
                return loop
            end = nfa.new()
            nfa.eps[cur].append(end)
            for _ in range(hi - lo):
                cur = self.seq(sub, cur)
                nfa.eps[cur].append(end)
            return end
        if op is sre_c.AT:
            end = nfa.new()
            if av in (sre_c.AT_END, sre_c.AT_END_STRING):
                nfa.eps_end[start].append(end)
            else:
                raise Unsupported(f"anchor {av}")
            return end
        raise Unsupported(f"regex construct {op}")


class Dfa:
    """A lazily determinised automaton for one pattern over `alphabet`.

    States are frozensets of NFA states (epsilon-closed, without the end-only edges); the empty set
    is the dead state.
    """

    def __init__(self, pattern: str, alphabet: str = DIGITS, flags: int = 0) -> None:
        try:
            tree = sre_p.parse(pattern, flags)
        except re.error as exc:  # pragma: no cover - metadata patterns compile
            raise Unsupported(str(exc)) from None
        builder = _Builder(alphabet, bool(flags & re.IGNORECASE))
        nfa = builder.nfa
        first = nfa.new()
        self.accept = builder.seq(tree, first)
        self.nfa = nfa
        self.pattern = pattern
        self.alphabet = alphabet
        self.start = self._closure({first})
        #: Per NFA state: character -> targets.
        self._moves: list[dict[str, tuple[int, ...]]] = []
        for edges in nfa.edges:
            moves: dict[str, list[int]] = {}
            for chars, target in edges:
                for ch in chars:
                    moves.setdefault(ch, []).append(target)
            self._moves.append({ch: tuple(ts) for ch, ts in moves.items()})
        self._closures: dict[frozenset[int], frozenset[int]] = {}
        self._step: dict[tuple[frozenset[int], str], frozenset[int]] = {}
        self._verdict: dict[tuple[frozenset[int], int], int] = {}
        self._accepting: dict[frozenset[int], bool] = {}

    def _closure(self, states: Iterable[int]) -> frozenset[int]:
        seen = set(states)
        stack = list(seen)
        while stack:
            s = stack.pop()
            for t in self.nfa.eps[s]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    def _end_closure(self, states: Iterable[int]) -> frozenset[int]:
        seen = set(states)
        stack = list(seen)
        while stack:
            s = stack.pop()
            for t in (*self.nfa.eps[s], *self.nfa.eps_end[s]):
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    def step(self, state: frozenset[int], ch: str) -> frozenset[int]:
        key = (state, ch)
        nxt = self._step.get(key)
        if nxt is None:
            moves = self._moves
            targets = frozenset(t for s in state for t in moves[s].get(ch, ()))
            if not targets:
                nxt = DEAD
            else:
                nxt = self._closures.get(targets)
                if nxt is None:
                    nxt = self._closures[targets] = self._closure(targets)
            self._step[key] = nxt
        return nxt

    def walk(self, text: str, state: frozenset[int] | None = None) -> frozenset[int]:
        cur = self.start if state is None else state
        for ch in text:
            cur = self.step(cur, ch)
        return cur

    def accepting(self, state: frozenset[int]) -> bool:
        """True when the input may end here (a full match)."""
        acc = self._accepting.get(state)
        if acc is None:
            acc = self.accept in self._end_closure(state)
            self._accepting[state] = acc
        return acc

    def verdict(self, state: frozenset[int], remaining: int) -> int:
        """Full-match answer for every continuation of exactly `remaining` characters:
        ALL, NONE, or MIXED when it depends on them."""
        if not state:
            return NONE
        key = (state, remaining)
        v = self._verdict.get(key)
        if v is None:
            if remaining == 0:
                v = ALL if self.accepting(state) else NONE
            else:
                # Stop at the first disagreement: MIXED needs no more.
                first = -1
                v = NONE
                for ch in self.alphabet:
                    sub = self.verdict(self.step(state, ch), remaining - 1)
                    if sub == MIXED or (first >= 0 and sub != first):
                        v = MIXED
                        break
                    first = v = sub
            self._verdict[key] = v
        return v

    def fullmatch(self, text: str) -> bool:
        return self.accepting(self.walk(text))

    @staticmethod
    def is_dead(state: frozenset[int]) -> bool:
        return not state

    def can_match_somewhere(self) -> bool:
        """Whether the pattern matches any string over the alphabet, with `$` treated as always
        satisfied. That over-approximates every match `re.search` could find, so False proves that
        `search` never matches a string made of this alphabet."""
        start = self._end_closure(self.start)
        seen = {start}
        stack = [start]
        while stack:
            st = stack.pop()
            if self.accept in st:
                return True
            for ch in self.alphabet:
                targets = {t for s in st for chars, t in self.nfa.edges[s] if ch in chars}
                nxt = self._end_closure(targets)
                if nxt and nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False
