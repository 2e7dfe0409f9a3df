"""A sqlite database in WAL mode across checkpoints (tests/events.rs).

`sqlite-wal.py program`: opens wal.db, and twice commits ten rows, says
"ready N: R rows" and waits for a line on stdin (a checkpoint comes there,
and another process uses the database meanwhile); then commits ten more
and says how many rows there are, how many the other process added, and
what `pragma integrity_check` says.

`sqlite-wal.py other`: the other process: reads the count, tries to add a
row (a busy database is allowed: it says so), closes, and says what it saw
and whether the WAL file outlived its close (a last connection's close
checkpoints the WAL into the database and deletes it; the program's open
connection must keep it from being the last one).
"""
import os
import sqlite3
import sys


def program():
    db = sqlite3.connect("wal.db", isolation_level=None)
    db.execute("pragma journal_mode=wal")
    db.execute("create table if not exists t(n integer, who text)")

    def add(first):
        db.execute("begin")
        for n in range(first, first + 10):
            db.execute("insert into t values (?, 'program')", (n,))
        db.execute("commit")

    def count(where=""):
        return db.execute("select count(*) from t " + where).fetchone()[0]

    for gen in range(2):
        add(gen * 10)
        print(f"ready {gen}: {count()} rows", flush=True)
        sys.stdin.readline()
    add(20)
    check = db.execute("pragma integrity_check").fetchone()[0]
    others = count("where who = 'other'")
    print(f"end: {count()} rows, {others} from the other process, integrity {check}", flush=True)
    db.close()


def other():
    db = sqlite3.connect("wal.db", timeout=0.5, isolation_level=None)
    rows = db.execute("select count(*) from t").fetchone()[0]
    try:
        db.execute("insert into t values (-1, 'other')")
        added = "added a row"
    except sqlite3.OperationalError as e:
        added = f"could not add a row ({e})"
    db.close()
    wal = "kept" if os.path.exists("wal.db-wal") and os.path.exists("wal.db-shm") else "gone"
    print(f"other: {rows} rows, {added}; WAL {wal} after close", flush=True)


{"program": program, "other": other}[sys.argv[1]]()
