"""The journal's tables: claims (one row per claim of a file), attempts (one per HTTP request
about it), replays (retry-failed's history waiting for the next outcome).

``CREATE ... IF NOT EXISTS`` throughout: opening an older journal brings it up to date.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    claim_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT,
    location TEXT,
    owner TEXT,
    sha256 TEXT,
    size INTEGER,
    data_model TEXT,
    event_type TEXT,
    route TEXT,                      -- the route that chose its destinations (config routes)
    destinations TEXT,               -- JSON: the Meta.Destinations it was sent to
    state TEXT NOT NULL,             -- claimed | waiting | released | accepted | finishing | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_retry_at REAL,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    logs TEXT NOT NULL DEFAULT '[]',
    errors TEXT NOT NULL DEFAULT '[]',
    uploads TEXT NOT NULL DEFAULT '[]',
    outcome TEXT,                    -- done | failed, once decided
    reason_kind TEXT,
    duplicate_of TEXT,
    dest TEXT,
    dropped_at REAL,
    first_claimed_at REAL,
    finished_at REAL
);
-- look-ups by bytes (dedupe) and by inbox name; without ``state``, which changes at every step,
-- so a step rewrites one index fewer (these replace the first version's (sha256, state) and
-- (name, state) indexes, dropped here)
DROP INDEX IF EXISTS claims_by_sha;
DROP INDEX IF EXISTS claims_by_name;
CREATE INDEX IF NOT EXISTS claims_by_sha256 ON claims (sha256);
CREATE INDEX IF NOT EXISTS claims_by_inbox_name ON claims (name);
CREATE INDEX IF NOT EXISTS claims_by_state ON claims (state, next_retry_at);
CREATE TABLE IF NOT EXISTS attempts (
    claim_id TEXT NOT NULL,
    kind TEXT NOT NULL,              -- send | upload
    n INTEGER NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    status INTEGER,
    result TEXT,                     -- accepted | transient | permanent | auth | interrupted (NULL: in flight)
    maybe_seen INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (claim_id, kind, n)
);
-- retry-failed: the sidecar of a failed file put back into the inbox, until the file's next
-- outcome takes it into its own sidecar as ``history`` (keyed by the inbox name it was put
-- back under and its bytes, which is exactly what the next claim of it will see)
CREATE TABLE IF NOT EXISTS replays (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    requeued_at REAL NOT NULL,
    history TEXT NOT NULL,           -- JSON list: earlier sidecars, oldest first
    consumed_by TEXT                 -- the claim whose sidecar took them in
);
CREATE INDEX IF NOT EXISTS replays_by_file ON replays (name, sha256);
-- retention: the bytes of delivered files whose claim rows were pruned, so that dedupe still
-- knows them (one row per sha256, the latest delivery; kept for retention.dedupe_days)
CREATE TABLE IF NOT EXISTS delivered_hashes (
    sha256 TEXT PRIMARY KEY,
    dest TEXT,
    name TEXT,
    delivered_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_by_finished ON claims (finished_at);
"""

# Columns added after the first release: an older journal gains them when it is opened (SQLite
# has no ADD COLUMN IF NOT EXISTS, so each is added when missing).
ADDED_COLUMNS = (("claims", "route", "TEXT"), ("claims", "destinations", "TEXT"))


def add_missing_columns(db) -> None:
    """Bring an older journal's tables up to ADDED_COLUMNS (idempotent; a process opening the
    journal at the same moment may add a column first, which is fine)."""
    import sqlite3
    for table, column, kind in ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column in present:
            continue
        try:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):
                raise


OPEN_STATES = ("claimed", "waiting", "released", "accepted", "finishing")
