"""routes: which Redox destinations a checked file is sent to (config ``routes``).

``routes`` is an ordered list; each has a ``match`` of up to three keys, each one string or a
list of strings (any of them): ``data_model`` (Meta.DataModel, exact), ``event_type``
(Meta.EventType, exact) and ``path`` (a glob on the file's path below the inbox or prefix). The
first route whose every key holds decides; a file no route matches goes to the top-level
``destinations``; when that list is empty the file is *unrouted*: it fails with reason_kind
``unrouted`` and is never sent.

The path globs, the route names and the DEFAULT / UNROUTED names live with the config
(config/routing.py), whose checks judge them before any file is routed. This module is pure
(no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

from pipeline.config.routing import DEFAULT, compile_glob, route_names


@dataclass(frozen=True)
class Choice:
    """Where a file goes: the route's ``name`` and the destinations for Meta.Destinations."""
    name: str
    destinations: tuple[dict, ...]


@dataclass(frozen=True)
class _Compiled:
    name: str
    data_models: Optional[frozenset[str]]
    event_types: Optional[frozenset[str]]
    paths: Optional[tuple[Callable[[str], bool], ...]]
    destinations: tuple[dict, ...]

    def holds(self, data_model: str, event_type: str, path: str) -> bool:
        return ((self.data_models is None or data_model in self.data_models)
                and (self.event_types is None or event_type in self.event_types)
                and (self.paths is None or any(match(path) for match in self.paths)))


class Router:
    """The configured routes, compiled once; :meth:`pick` is pure and thread-safe."""

    def __init__(self, routes: Sequence = (), default: Iterable[dict] = ()):
        """``routes``: config Route models (already validated); ``default``: the top-level
        destinations as dicts."""
        names = route_names(routes)
        self.routes = [self._compile(name, route) for name, route in zip(names, routes)]
        self.default = Choice(DEFAULT, tuple(dict(d) for d in default)) if default else None

    @classmethod
    def from_settings(cls, settings) -> "Router":
        return cls(settings.routes, [d.model_dump() for d in settings.destinations])

    @staticmethod
    def _compile(name: str, route) -> _Compiled:
        match = route.match
        models, events, paths = (match.values(k) for k in ("data_model", "event_type", "path"))
        return _Compiled(name, frozenset(models) if models is not None else None,
                         frozenset(events) if events is not None else None,
                         tuple(compile_glob(p) for p in paths) if paths is not None else None,
                         tuple(d.model_dump() for d in route.destinations))

    def pick(self, data_model: str, event_type: str, path: str) -> Optional[Choice]:
        """The first route that holds, else the default; None when the file is unrouted."""
        for route in self.routes:
            if route.holds(data_model, event_type, path):
                return Choice(route.name, route.destinations)
        return self.default


