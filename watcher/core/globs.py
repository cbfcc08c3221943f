"""Include and exclude globs on a path relative to a watched folder, matched in linear time.

`*` and `?` match within one name, `[...]` is one character of a class (`[!...]` or `[^...]` negated)
within one name, `**/` any number of whole folders (none included), and `**` anywhere else any text,
`/` included. The whole path must match.

A dropper chooses the paths (a tree hundreds of folders deep) and the operator the globs; a regex engine
that backtracks takes time exponential in the number of `**` for such a pair. This matcher follows every
way through the pattern at once (a set of states, advanced one character at a time), so a match costs at
most (characters in the path + 1) x (states in the pattern) steps, whatever the two are.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# What a state's transition takes: one character `ch`, any character, any but "/", or one of a class.
_ANY = "any"
_NAME = "name"
# Transitions a Glob remembers at most: a dropper's names cannot grow it without bound.
_REMEMBERED = 4096


@dataclass(frozen=True)
class _Class:
    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    negated: bool

    def takes(self, ch: str) -> bool:
        if ch == "/":
            return False
        inside = ch in self.chars or any(low <= ch <= high for low, high in self.ranges)
        return inside != self.negated


_Test = str | _Class  # a single character, _ANY, _NAME or a class


def _takes(test: _Test, ch: str) -> bool:
    if test == _ANY:
        return True
    if test == _NAME:
        return ch != "/"
    if isinstance(test, _Class):
        return test.takes(ch)
    return ch == test


@dataclass(frozen=True)
class _State:
    loop: _Test | None = None  # a character it takes and stays
    step: _Test | None = None  # a character it takes to the next state
    skip: tuple[int, ...] = ()  # states it is also in, without taking a character


class Glob:
    """One compiled glob; `matches(path)` is true when the whole relative path matches.

    Each set of states met and the character that left it are remembered (up to `_REMEMBERED`
    transitions), so a glob used again walks most paths at one lookup a character. Safe from any thread.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._states = _compile(pattern)
        self._final = len(self._states)
        self._closure = [_closure(self._states, i) for i in range(self._final + 1)]
        self._next: dict[tuple[frozenset[int], str], frozenset[int]] = {}

    @property
    def size(self) -> int:
        """The number of states: a match takes at most (len(path) + 1) x size steps."""
        return self._final + 1

    def matches(self, path: str) -> bool:
        return self.run(path)[0]

    def run(self, path: str) -> tuple[bool, int]:
        """Whether `path` matches, and the steps it took (a state looked at, or a transition remembered)."""
        current = self._closure[0]
        steps = 0
        remembered = self._next
        for ch in path:
            following = remembered.get((current, ch))
            if following is None:
                following = self._advance(current, ch)
                steps += len(current)
                if len(remembered) >= _REMEMBERED:
                    remembered.clear()
                remembered[current, ch] = following
            else:
                steps += 1
            if not following:
                return False, steps
            current = following
        return self._final in current, steps

    def _advance(self, current: frozenset[int], ch: str) -> frozenset[int]:
        following: set[int] = set()
        for index in current:
            if index == self._final:
                continue
            state = self._states[index]
            if state.loop is not None and _takes(state.loop, ch):
                following |= self._closure[index]
            if state.step is not None and _takes(state.step, ch):
                following |= self._closure[index + 1]
        return frozenset(following)


@functools.cache
def compiled(pattern: str) -> Glob:
    return Glob(pattern)


def glob_matches(pattern: str, path: str) -> bool:
    return compiled(pattern).matches(path)


def _compile(pattern: str) -> list[_State]:
    states: list[_State] = []
    i = 0
    while i < len(pattern):
        here = len(states)
        if pattern.startswith("**/", i):
            # None, or any text ending in "/": every split of such text is whole folders.
            states.append(_State(skip=(here + 1, here + 2)))
            states.append(_State(loop=_ANY, step="/"))
            i += 3
        elif pattern.startswith("**", i):
            states.append(_State(loop=_ANY, skip=(here + 1,)))
            i += 2
        elif pattern[i] == "*":
            states.append(_State(loop=_NAME, skip=(here + 1,)))
            i += 1
        elif pattern[i] == "?":
            states.append(_State(step=_NAME))
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            states.append(_State(step=_parse_class(pattern[i + 1 : end])))
            i = end + 1
        else:
            states.append(_State(step=pattern[i]))
            i += 1
    return states


def _parse_class(body: str) -> _Class:
    negated = body[:1] in ("!", "^") and len(body) > 1
    if negated:
        body = body[1:]
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            ranges.append((body[i], body[i + 2]))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return _Class(frozenset(chars), tuple(ranges), negated)


def _closure(states: list[_State], start: int) -> frozenset[int]:
    """`start` and every state reached from it without taking a character."""
    seen = {start}
    todo = [start]
    while todo:
        index = todo.pop()
        if index < len(states):
            for target in states[index].skip:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
    return frozenset(seen)
