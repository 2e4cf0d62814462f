"""A small name -> object registry, shared by models, datasets, criteria and backends."""

from __future__ import annotations

import fnmatch
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, error: type[Exception] = KeyError):
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise self._error(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def registered(self) -> list[str]:
        """Every name, in the order it was registered (``names`` sorts)."""
        return list(self._items)

    def unregister(self, name: str) -> None:
        """Drop ``name`` (a plugin or a test that registered it and is done with it)."""
        if name not in self._items:
            raise self._error(f"no {self.kind} {name!r} is registered")
        del self._items[name]

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
