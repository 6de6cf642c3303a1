"""The audit's result store: one SQLite file (``DIR/audit.sqlite``), one row per finished unit.

Each finished unit is inserted and committed in its own transaction, so a crash or ``kill -9``
loses at most the unit that was running. The database runs in WAL mode. ``meta`` holds the
fingerprint and the resolved config; ``runs`` counts, for every invocation, the units it ran and
the units it skipped because an earlier run had finished them.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustcv.core.errors import InputError

__all__ = [
    "APPLICATION_ID",
    "LOCK_FILE",
    "STORE_FILE",
    "FolderLock",
    "RunRecord",
    "Store",
    "StoredUnit",
]

STORE_FILE = "audit.sqlite"
LOCK_FILE = ".robustcv.lock"
APPLICATION_ID = 0x52435641  # "RCVA": marks the file as a robustcv audit store
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    key TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    condition TEXT NOT NULL,
    shard INTEGER NOT NULL,
    row TEXT NOT NULL,
    seconds REAL NOT NULL,
    run_id INTEGER NOT NULL,
    finished REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    units_run INTEGER NOT NULL DEFAULT 0,
    units_skipped INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'running'
);
"""


@dataclass(frozen=True)
class StoredUnit:
    """A finished unit as stored: its key parts, the row and the seconds it took."""

    key: str
    suite: str
    condition: str
    shard: int
    row: dict[str, Any]
    seconds: float
    run_id: int


@dataclass(frozen=True)
class RunRecord:
    """One invocation of the audit on this folder."""

    id: int
    started: float
    finished: float | None
    units_run: int
    units_skipped: int
    status: str


class Store:
    """An audit store in ``folder/audit.sqlite``.

    Args:
        folder: the audit folder (must exist).

    Raises:
        InputError: the file exists but is not a robustcv audit store.

    Example:
        >>> import tempfile
        >>> store = Store(tempfile.mkdtemp())
        >>> run = store.begin_run()
        >>> store.put("clean:all#0", "clean", "all", 0, {"correct": 9, "n": 10}, 0.1, run)
        >>> store.keys(), store.get("clean:all#0").row["correct"]
        ({'clean:all#0'}, 9)
        >>> store.close()
    """

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / STORE_FILE
        existed = self.path.exists()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0)
            if existed:
                app = self._db.execute("PRAGMA application_id").fetchone()[0]
                if app != APPLICATION_ID:
                    self._db.close()
                    raise InputError(
                        f"{self.path} is not a robustcv audit store; choose a new --out folder"
                    )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if not existed:
                self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self._db.executescript(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as err:
            raise InputError(
                f"cannot open {self.path} as an audit store ({err}); choose a new --out folder"
            ) from err

    # -------------------------------------------------------------- meta
    def get_meta(self, key: str) -> Any:
        """A stored metadata value (JSON-decoded), or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a metadata value (JSON-encoded) and commit."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    # -------------------------------------------------------------- units
    def keys(self) -> set[str]:
        """Keys of every finished unit."""
        return {r[0] for r in self._db.execute("SELECT key FROM units")}

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM units").fetchone()[0])

    def get(self, key: str) -> StoredUnit | None:
        """A finished unit by key, or None."""
        r = self._db.execute(
            "SELECT key, suite, condition, shard, row, seconds, run_id FROM units WHERE key = ?",
            (key,),
        ).fetchone()
        return (
            None if r is None else StoredUnit(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6])
        )

    def units(self, suite: str | None = None) -> Iterator[StoredUnit]:
        """Finished units (of one suite), in key order."""
        sql = "SELECT key, suite, condition, shard, row, seconds, run_id FROM units"
        args: tuple[Any, ...] = ()
        if suite is not None:
            sql += " WHERE suite = ?"
            args = (suite,)
        for r in self._db.execute(sql + " ORDER BY key", args):
            yield StoredUnit(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6])

    def put(
        self,
        key: str,
        suite: str,
        condition: str,
        shard: int,
        row: dict[str, Any],
        seconds: float,
        run_id: int,
    ) -> None:
        """Record a finished unit and count it for ``run_id``, in one committed transaction."""
        text = json.dumps(row, allow_nan=False, separators=(",", ":"))
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO units (key, suite, condition, shard, row, seconds, run_id, "
                "finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, suite, condition, shard, text, float(seconds), run_id, time.time()),
            )
            self._db.execute("UPDATE runs SET units_run = units_run + 1 WHERE id = ?", (run_id,))

    # -------------------------------------------------------------- runs
    def mark_interrupted(self) -> int:
        """Mark runs still ``running`` as ``interrupted``; returns how many.

        Call it while holding the folder's :class:`FolderLock`: then no live process can be
        running on the folder, so a ``running`` record belongs to a run that was killed.
        """
        with self._db:
            cur = self._db.execute(
                "UPDATE runs SET status = 'interrupted' WHERE status = 'running'"
            )
        return int(cur.rowcount)

    def begin_run(self) -> int:
        """Start a run record; returns its id."""
        with self._db:
            cur = self._db.execute("INSERT INTO runs (started) VALUES (?)", (time.time(),))
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def count_skipped(self, run_id: int, n: int) -> None:
        """Add ``n`` units skipped (finished by an earlier run) to a run record."""
        if n:
            with self._db:
                self._db.execute(
                    "UPDATE runs SET units_skipped = units_skipped + ? WHERE id = ?", (n, run_id)
                )

    def end_run(self, run_id: int, status: str) -> None:
        """Close a run record with its final status (``finished``, ``failed``, ``interrupted``)."""
        with self._db:
            self._db.execute(
                "UPDATE runs SET finished = ?, status = ? WHERE id = ?",
                (time.time(), status, run_id),
            )

    def runs(self) -> list[RunRecord]:
        """Every run on this folder, oldest first."""
        return [
            RunRecord(*r)
            for r in self._db.execute(
                "SELECT id, started, finished, units_run, units_skipped, status FROM runs "
                "ORDER BY id"
            )
        ]

    # -------------------------------------------------------------- maintenance
    def clear(self) -> None:
        """Forget every unit, run and metadata value (``--force`` on a changed config)."""
        with self._db:
            self._db.execute("DELETE FROM units")
            self._db.execute("DELETE FROM runs")
            self._db.execute("DELETE FROM meta")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FolderLock:
    """The one-writer lock of an audit folder: ``DIR/.robustcv.lock``, an OS-level ``flock``.

    Held for the whole run, before the store is opened. The file records the holder (pid and
    host) for the message a second writer gets. The kernel releases the lock when the holder
    dies, so a lock left by a killed run is taken over without any stale-lock guessing; the
    next run marks that run's record ``interrupted``. On systems without ``fcntl`` (Windows)
    the lock is a no-op.

    Args:
        folder: the audit folder (must exist).

    Raises:
        InputError: another live process holds the lock (naming it).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with FolderLock(d):
        ...     try:
        ...         FolderLock(d).acquire()
        ...     except InputError as err:
        ...         print("refused:", "is writing to" in str(err))
        refused: True
    """

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._fh: Any = None

    def acquire(self) -> FolderLock:
        """Take the lock or raise ``InputError`` naming the holder."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise InputError(
                f"another robustcv audit ({holder}) is writing to {self.path.parent}; wait for "
                "it to finish, or use another --out folder (--force cannot take over a folder "
                "in use)"
            ) from err
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Release the lock (closing the descriptor releases the flock)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
