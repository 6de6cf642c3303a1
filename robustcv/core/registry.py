"""A small registry of named things (models, datasets, recipes, later attacks and corruptions).

Each family owns one :class:`Registry`; the CLI's ``list`` command, the docs and the contract
tests iterate over it. Registration is explicit (a decorator or a call in the family's module),
and lookups of unknown names suggest close matches.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from robustcv.core.errors import InputError

__all__ = ["Entry", "Registry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item: its canonical name, the object, a one-line summary and aliases."""

    name: str
    obj: T
    summary: str
    aliases: tuple[str, ...] = ()


class Registry(Generic[T]):
    """A mapping from names (and aliases) to objects of one family.

    Args:
        family: what the registry holds, used in messages ("attack", "dataset", ...).

    Example:
        >>> recipes: Registry[int] = Registry("recipe")
        >>> recipes.add("standard", 1, summary="plain cross-entropy")
        >>> recipes.get("standard")
        1
        >>> recipes.get("standart")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: unknown recipe 'standart'; did you mean 'standard'? ...
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, obj: T, *, summary: str = "", aliases: tuple[str, ...] = ()) -> None:
        """Register ``obj`` under ``name`` (lower-case) and its aliases.

        Raises:
            InputError: the name or an alias is already taken.
        """
        key = name.lower()
        for taken in (key, *(alias.lower() for alias in aliases)):
            if taken in self._entries or taken in self._aliases:
                raise InputError(f"{self.family} name '{taken}' is already registered")
        self._entries[key] = Entry(key, obj, summary, tuple(aliases))
        for alias in aliases:
            self._aliases[alias.lower()] = key

    def register(
        self, name: str, *, summary: str = "", aliases: tuple[str, ...] = ()
    ) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; returns the object unchanged."""

        def deco(obj: T) -> T:
            self.add(name, obj, summary=summary, aliases=aliases)
            return obj

        return deco

    def canonical(self, name: str) -> str:
        """Return the canonical name for ``name`` or an alias; raise with suggestions if unknown."""
        key = name.lower().strip()
        if key in self._entries:
            return key
        if key in self._aliases:
            return self._aliases[key]
        known = sorted(self._entries)
        close = difflib.get_close_matches(key, known + sorted(self._aliases), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise InputError(f"unknown {self.family} '{name}'{hint} (known: {', '.join(known)})")

    def get(self, name: str) -> T:
        """Return the object registered under ``name`` (or an alias)."""
        return self._entries[self.canonical(name)].obj

    def entry(self, name: str) -> Entry[T]:
        """Return the full :class:`Entry` for ``name``."""
        return self._entries[self.canonical(name)]

    def remove(self, name: str) -> Entry[T]:
        """Unregister ``name`` (and its aliases); returns the removed entry.

        Example:
            >>> r: Registry[int] = Registry("thing")
            >>> r.add("a", 1, aliases=("b",))
            >>> r.remove("b").name, "a" in r, "b" in r
            ('a', False, False)
        """
        key = self.canonical(name)
        entry = self._entries.pop(key)
        for alias in entry.aliases:
            self._aliases.pop(alias.lower(), None)
        return entry

    def names(self) -> list[str]:
        """Canonical names in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower().strip()
        return key in self._entries or key in self._aliases

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)
