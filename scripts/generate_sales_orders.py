"""Generate the bundled sample CSV of sales orders (deterministic: same seed, same file).

Run: python scripts/generate_sales_orders.py [--rows 5000] [--out aggregator/examples/pipelines/data/sales_orders.csv]
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

REGIONS = ["north", "south", "east", "west"]
PRODUCTS = {"widget": 9.99, "gadget": 24.50, "gizmo": 4.25, "doohickey": 99.00, "sprocket": 1.75}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "aggregator/examples/pipelines/data/sales_orders.csv"


def generate(rows: int, seed: int = 20261125) -> list[dict[str, object]]:
    rng = random.Random(seed)  # noqa: S311 (reproducible sample data, not secrets)
    start = datetime(2026, 9, 1)
    orders = []
    for order_id in range(1, rows + 1):
        product = rng.choice(list(PRODUCTS))
        ordered_at = start + timedelta(seconds=rng.randrange(0, 60 * 24 * 3600))
        orders.append(
            {
                "order_id": order_id,
                "ordered_at": ordered_at.isoformat(sep=" "),
                "customer_id": rng.randrange(1, 800),
                "region": rng.choice(REGIONS),
                "product": product,
                "quantity": rng.randrange(1, 10),
                # Prices drift by a few cents so sums are not trivially round.
                "unit_price": round(PRODUCTS[product] * rng.uniform(0.9, 1.1), 2),
            }
        )
    orders.sort(key=lambda o: str(o["ordered_at"]))
    return orders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    orders = generate(args.rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(orders[0]))
        writer.writeheader()
        writer.writerows(orders)
    print(f"wrote {len(orders)} orders to {args.out}")


if __name__ == "__main__":
    main()
