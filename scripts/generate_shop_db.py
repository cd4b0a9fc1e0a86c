"""Generate the bundled sample "shop" SQLite database (deterministic: same seed, same rows).

Run: python scripts/generate_shop_db.py [--out aggregator/examples/pipelines/data/shop.db]
     python scripts/generate_shop_db.py --advance DB   # simulate a day of activity: new and updated orders
"""

from __future__ import annotations

import argparse
import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "aggregator/examples/pipelines/data/shop.db"
COUNTRIES = ["DE", "FR", "NL", "PL", "ES", "IT"]
STATUSES = ["placed", "paid", "shipped", "delivered", "cancelled"]
SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, country TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), status TEXT NOT NULL,
    amount REAL NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX orders_updated_at ON orders (updated_at);
"""


def create(path: Path, customers: int = 300, orders: int = 3000, seed: int = 7) -> None:
    rng = random.Random(seed)  # noqa: S311 (reproducible sample data, not secrets)
    start = datetime(2026, 10, 1)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
            [(i, f"Customer {i}", f"customer{i}@example.com", rng.choice(COUNTRIES), start.isoformat(sep=" "))
             for i in range(1, customers + 1)],
        )
        rows = []
        for i in range(1, orders + 1):
            ts = start + timedelta(minutes=rng.randrange(0, 50 * 24 * 60))
            rows.append((i, rng.randrange(1, customers + 1), rng.choice(STATUSES), round(rng.uniform(5, 500), 2),
                         ts.isoformat(sep=" ")))
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", rows)


def advance(path: Path, new_orders: int = 50, updates: int = 20, seed: int | None = None) -> None:
    """New orders and status changes, all stamped after the newest `updated_at`."""
    rng = random.Random(seed)  # noqa: S311 (reproducible sample data, not secrets)
    with sqlite3.connect(path) as conn:
        (newest,) = conn.execute("SELECT MAX(updated_at) FROM orders").fetchone()
        (max_id,) = conn.execute("SELECT MAX(id) FROM orders").fetchone()
        (customers,) = conn.execute("SELECT COUNT(*) FROM customers").fetchone()
        now = datetime.fromisoformat(newest) + timedelta(minutes=1)
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
            [(max_id + i, rng.randrange(1, customers + 1), "placed", round(rng.uniform(5, 500), 2),
              (now + timedelta(seconds=i)).isoformat(sep=" ")) for i in range(1, new_orders + 1)],
        )
        for order_id in rng.sample(range(1, max_id + 1), updates):
            conn.execute("UPDATE orders SET status = ?, updated_at = ? WHERE id = ?",
                         (rng.choice(STATUSES), now.isoformat(sep=" "), order_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--advance", type=Path, help="Add a day of activity to an existing database.")
    args = parser.parse_args()
    if args.advance:
        advance(args.advance)
        print(f"advanced {args.advance}")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        create(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
