"""board: the shared record ordering keeps of every claimed file, in the backend's storage.

Two kinds of items, each named so that one listing answers the gate's questions without
reading any item (names sort like the files' drop order: drop time, then name):

    unread/<place>~<owner tag>       a claimed file whose key is not known yet (by: patient,
                                     until the file is read); written *before* the claim
    keys/<key>/<place>~<state>       a file of that key not finished yet: p pending (waiting),
                                     s sending (it holds the key, through its retries), h held
                                     (failed with on_failure: hold; blocks the key)

``<place>`` is the drop time (fixed width) and the name in hex (names over 80 bytes are cut,
with a hash for the rest), ``<key>`` a keyed hash of the ordering key (the salt lives beside,
in ``salt``, so a short hash in a log line reveals nothing). A state change writes the new item
before removing the old one: a reader may see both for a moment and takes the stronger
(h > s > p), which is never less strict than either.

An item stays until its file's place in the sequence ends. Items a dead process left behind are
removed once they are *stale*: an unread mark whose owner is gone and whose claim was adopted
(or never made); a held entry whose file is no longer in failed/; a pending or sending entry
whose file is nowhere it could still be sent from. The first two are told at one look (those
files only ever move one way); the last must be seen at two looks at least ``stale_after``
seconds apart, since a file moving between two folders during one look can be missed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Optional

from pipeline.errors import StorageError
from pipeline.sources.orderstore import OrderStore

log = logging.getLogger("pipeline.ordering")
UNREAD, KEYS, SALT = "unread", "keys", "salt"
PENDING, SENDING, HELD = "p", "s", "h"
_STRENGTH = {PENDING: 0, SENDING: 1, HELD: 2}
NAME_HEX = 160


def place_of(name: str, stamp: float) -> str:
    """A file's place in drop order as text that sorts like (drop time, name)."""
    raw = name.encode("utf-8", "surrogateescape")
    text = raw.hex()
    if len(text) > NAME_HEX:
        text = text[:NAME_HEX] + "-" + hashlib.sha256(raw).hexdigest()[:16]
    return f"{max(0.0, stamp):020.6f}~{text}"


def stamp_of(place: str) -> float:
    """The drop time a place was made from."""
    return float(place.split("~", 1)[0])


@dataclass(frozen=True)
class Item:
    """One listed item: a file's ``place``, the ``state`` (entries) or owner ``tag`` (marks)."""
    place: str
    tail: str
    path: str
    mtime: float


class Board:
    """The board in ``store`` as seen by ``owner`` (this process; "" for operator commands)."""

    def __init__(self, store: OrderStore, owner: str, stale_after: float,
                 clock: Callable[[], float] = time.time):
        self.store, self.owner, self.stale_after, self.clock = store, owner, stale_after, clock
        self.tag = hashlib.sha256(owner.encode()).hexdigest()[:12]
        self._salt: Optional[bytes] = None
        self._suspects: dict[str, float] = {}      # item path → when it first looked stale

    # -- keys ------------------------------------------------------------------------------
    def key(self, kind: str, value: str) -> str:
        """The board's name for an ordering key: a keyed hash (32 hex digits)."""
        data = f"{kind}\0{value}".encode("utf-8", "surrogateescape")
        return hmac.new(self._secret(), data, hashlib.sha256).hexdigest()[:32]

    def _secret(self) -> bytes:
        if self._salt is None:
            self.store.write(SALT, secrets.token_hex(32).encode(), create_only=True)
            found = (self.store.read(SALT) or b"").strip()
            if not found:
                raise StorageError("the ordering board's salt is empty", SALT)
            self._salt = found
        return self._salt

    # -- unread marks ----------------------------------------------------------------------
    def mark(self, place: str, name: str) -> None:
        self.store.write(f"{UNREAD}/{place}~{self.tag}", _doc(owner=self.owner, name=name))

    def unmark(self, place: str) -> None:
        self.store.delete(f"{UNREAD}/{place}~{self.tag}")

    def marks(self) -> list[Item]:
        return _items(UNREAD, self.store.list(UNREAD))

    def mine(self, item: Item) -> bool:
        return item.tail == self.tag

    # -- entries of a key ------------------------------------------------------------------
    def entries(self, key: str) -> dict[str, Item]:
        """place → its entry (the strongest state when a change left two for a moment)."""
        found: dict[str, Item] = {}
        for item in _items(f"{KEYS}/{key}", self.store.list(f"{KEYS}/{key}")):
            if item.tail in _STRENGTH:
                old = found.get(item.place)
                if old is None or _STRENGTH[item.tail] > _STRENGTH[old.tail]:
                    found[item.place] = item
        return found

    def enter(self, key: str, place: str, name: str) -> None:
        """Give the file at ``place`` a pending entry unless it has one (any state: a pending
        item beside a stronger one changes nothing)."""
        self.store.write(f"{KEYS}/{key}/{place}~{PENDING}", _doc(owner=self.owner, name=name),
                         create_only=True)

    def set_state(self, key: str, place: str, state: str, was: Optional[str] = None, **info) -> None:
        """Write the entry in ``state`` (with ``info``), then remove its other states (only
        ``was`` when the caller just saw it in that one: a request less on S3)."""
        self.store.write(f"{KEYS}/{key}/{place}~{state}", _doc(owner=self.owner, **info))
        for other in (was,) if was else tuple(_STRENGTH):
            if other != state:
                self.store.delete(f"{KEYS}/{key}/{place}~{other}")

    def leave(self, key: str, place: str, was: Optional[str] = None) -> None:
        """The file's place in its key's sequence is over (``was``: its only state, if known)."""
        for state in (was,) if was else (PENDING, HELD, SENDING):   # the strongest last
            self.store.delete(f"{KEYS}/{key}/{place}~{state}")

    def forget(self, place: str) -> list[str]:
        """Remove the entries at ``place`` under whatever key; the keys they were under."""
        keys = []
        for rel, _ in self.store.list(KEYS, deep=True):
            key, _, name = rel.partition("/")
            if name.rpartition("~")[0] == place:
                self.store.delete(f"{KEYS}/{rel}")
                keys.append(key)
        return keys

    def info(self, item: Item) -> dict:
        raw = self.store.read(item.path)
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {}
        return doc if isinstance(doc, dict) else {}

    def held(self) -> list[tuple[str, Item, dict]]:
        """(key, entry, info) of every held entry: what status shows."""
        found = []
        for rel, mtime in self.store.list(KEYS, deep=True):
            key, _, name = rel.partition("/")
            place, _, state = name.rpartition("~")
            if state == HELD:
                item = Item(place, state, f"{KEYS}/{rel}", mtime)
                found.append((key, item, self.info(item)))
        return found

    # -- what a dead process left ----------------------------------------------------------
    def live_mark(self, item: Item) -> bool:
        """Does this unread mark still stand for a claim (its owner alive, or its claim not
        adopted yet)? A stale one is removed."""
        if self.mine(item):
            return True
        doc = self.info(item)
        if not doc:
            return False
        alive = self.store.holds(str(doc.get("owner")), str(doc.get("name")), item.mtime)
        return self._confirm(item, alive, at_once=True)

    def live_entry(self, item: Item) -> bool:
        """Could this entry's file still be sent (in the inbox or claimed; held: still in
        failed/)? A stale one is removed."""
        doc = self.info(item)
        name = doc.get("name")
        if not isinstance(name, str):
            return self._confirm(item, False)
        if item.tail == HELD:       # processing → failed/ → (retry-failed: pending first) inbox
            where = doc.get("failed")
            alive = (self.store.exists(where) if where
                     else self.store.present(name, stamp_of(item.place)) or self.store.in_failed(name))
            return self._confirm(item, alive, at_once=True)
        return self._confirm(item, self.store.present(name, stamp_of(item.place)))

    def _confirm(self, item: Item, alive: bool, at_once: bool = False) -> bool:
        """Treat ``item`` as live unless it looked stale (at two looks ``stale_after`` apart,
        unless ``at_once``); a stale item is removed."""
        if alive:
            self._suspects.pop(item.path, None)
            return True
        now = self.clock()
        first = self._suspects.setdefault(item.path, now)
        if not at_once and now - first < self.stale_after:
            return True
        self._suspects.pop(item.path, None)
        self.store.delete(item.path)
        log.info("ordering: removed what a finished or vanished file left on the board",
                 extra={"item": item.path.rsplit("/", 1)[0] + "/…"})
        return False


def _items(folder: str, listed: list[tuple[str, float]]) -> list[Item]:
    items = []
    for rel, mtime in listed:
        place, sep, tail = rel.rpartition("~")
        if sep and "~" in place:
            items.append(Item(place, tail, f"{folder}/{rel}", mtime))
    return items


def _doc(**fields) -> bytes:
    return json.dumps(dict(fields, at=time.time()), separators=(",", ":")).encode()


def operator_board(view) -> Optional[Board]:
    """The board as the operator commands see it (None when ordering is off)."""
    store = view.order_store()
    return Board(store, owner="", stale_after=0.0) if store is not None else None


def unhold(board: Board, location: str, name: str, new_name: str) -> Callable[[bool], None]:
    """A failed file at ``location`` (``name`` below failed/) goes back to the inbox as
    ``new_name``: if it holds its key, its entry is made pending under the new name *first*
    (it keeps the key's later files back until it is sent again, with its drop time). Returns
    what to call once the move is done (True) or failed (False: the hold stays as it was)."""
    found = []
    for key, item, info in board.held():
        if info.get("failed") == location or (not info.get("failed") and info.get("name") == name):
            new_place = place_of(new_name, stamp_of(item.place))
            board.enter(key, new_place, new_name)
            found.append((key, item, new_place))

    def done(moved: bool) -> None:
        for key, item, new_place in found:
            if moved and new_place == item.place:
                board.set_state(key, new_place, PENDING, name=new_name)
            elif moved:
                board.store.delete(item.path)
            elif new_place != item.place:
                board.leave(key, new_place)
    return done
