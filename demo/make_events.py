"""Generate the demo campaign's behavioural events: ``events.csv``.

Deterministic (``random.Random(2026)``, times relative to the fixed ``AS_OF``),
so ``python demo/make_events.py`` rewrites the shipped file byte for byte. It
reads ``profiles.csv`` (run ``make_profiles.py`` first when that changes) and,
for each profile id, writes opens, clicks, product views, add-to-carts and
purchases consistent with the profile: the latest purchase is the profile's
``last_purchase_at``, the number of purchases follows ``orders``, and each
profile has a "temperature" that sets how recently and how often it engages,
so every lifecycle stage, engagement level and RFM label has members. A few
profiles abandoned a cart 31 minutes to 23 hours before ``AS_OF``, viewed one
product again and again, or browsed several products without adding any.

Like a real export, a few rows are bad on purpose: unknown profile ids, an
unparseable or missing timestamp, a missing type, an event after ``AS_OF``; a
build rejects them into ``events_errors.jsonl``.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

AS_OF = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
SEED = 2026
HERE = Path(__file__).resolve().parent
SHOP = "https://shop.example.com"
COLUMNS = [
    "profile_id", "type", "timestamp", "product_id", "category", "name", "value", "quantity",
    "image_url",
]  # fmt: skip
PRODUCTS = [  # (product_id, name, price, category)
    ("JP-1001", "Merino Crewneck Sweater", 89.00, "knitwear"),
    ("JP-1002", "Cable-Knit Cardigan", 118.00, "knitwear"),
    ("JP-1003", "Waxed Cotton Field Jacket", 245.00, "outerwear"),
    ("JP-1004", "Quilted Liner Vest", 79.50, "outerwear"),
    ("JP-1005", "Chelsea Boots, Oiled Leather", 189.00, "footwear"),
    ("JP-1006", "Wool Flannel Shirt", 68.00, "shirts"),
    ("JP-1007", "Cashmere Beanie", 45.00, "accessories"),
    ("JP-1008", "Lambswool Scarf", 39.95, "accessories"),
    ("JP-1009", "Selvedge Denim, Straight", 128.00, "trousers"),
    ("JP-1010", "Corduroy Trousers", 96.00, "trousers"),
    ("JP-1011", "Shearling-Lined Slippers", 72.00, "footwear"),
    ("JP-1012", "Down Puffer Coat", 310.00, "outerwear"),
    ("JP-1013", "Ribbed Wool Socks, 3-Pack", 24.00, "accessories"),
    ("JP-1014", "Leather Gloves", 58.00, "accessories"),
    ("JP-1015", "Canvas Weekender Bag", 145.00, "bags"),
    ("JP-1016", "Stoneware Mug Set", 42.00, "home"),
    ("JP-1017", "Plaid Wool Throw", 99.00, "home"),
    ("JP-1018", "Soy Candle, Cedar & Smoke", 28.00, "home"),
    ("JP-1019", "Fisherman Rollneck", 135.00, "knitwear"),
    ("JP-1020", "Trail Running Shoes", 139.00, "footwear"),
    ("JP-1021", "Rain Shell, Packable", 159.00, "outerwear"),
    ("JP-1022", "Henley, Waffle Knit", 49.00, "knitwear"),
    ("JP-1023", "Leather Belt, Brass Buckle", 55.00, "accessories"),
    ("JP-1024", "Enamel Camp Kettle", 36.00, "home"),
]
# temperature -> (weight, last activity days ago (low, high), opens (low, high), click rate)
TEMPERATURES = {
    "hot": (25, (0.0, 10.0), (6, 16), 0.35),
    "warm": (35, (3.0, 29.0), (3, 8), 0.2),
    "cool": (20, (31.0, 58.0), (1, 4), 0.1),
    "cold": (20, (61.0, 320.0), (0, 2), 0.05),
}
BAD_ROWS = [
    {"profile_id": "C900001", "type": "open", "timestamp": "2026-11-18T10:00:00Z"},
    {"profile_id": "C900002", "type": "purchase", "timestamp": "2026-11-02T16:20:00Z",
     "value": "59.00"},
    {"profile_id": "X-UNKNOWN", "type": "click", "timestamp": "2026-11-19T08:00:00Z"},
    {"profile_id": "C000005", "type": "view", "timestamp": "yesterday"},
    {"profile_id": "C000006", "type": "open", "timestamp": "2026-13-45T00:00:00Z"},
    {"profile_id": "C000007", "type": "click", "timestamp": ""},
    {"profile_id": "C000008", "type": "", "timestamp": "2026-11-10T12:00:00Z"},
    {"profile_id": "C000009", "type": "open", "timestamp": "2026-12-01T09:00:00Z"},
]  # fmt: skip


def iso(moment: datetime) -> str:
    """UTC, to the second, the way the export writes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime | None:
    """A profile timestamp, or None when the profile's value is unusable."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def ago(days: float) -> datetime:
    """A moment ``days`` before AS_OF, to the second."""
    return AS_OF - timedelta(seconds=round(days * 86400))


class Events:
    """The rows of one profile, built up event by event."""

    def __init__(self, profile_id: str, rng: random.Random) -> None:
        self.profile_id = profile_id
        self.rng = rng
        self.rows: list[dict[str, str]] = []

    def add(self, kind: str, when: datetime, **props: str) -> None:
        if when <= AS_OF:
            self.rows.append({"profile_id": self.profile_id, "type": kind, "timestamp": iso(when)})
            self.rows[-1].update(props)

    def view(self, when: datetime, product: tuple[str, str, float, str]) -> None:
        self.add("view", when, product_id=product[0], category=product[3])

    def add_to_cart(self, when: datetime, product: tuple[str, str, float, str]) -> None:
        self.add(
            "add_to_cart", when, product_id=product[0], name=product[1], value=f"{product[2]:.2f}",
            quantity=str(self.rng.choice([1, 1, 1, 2])),
            image_url=f"{SHOP}/img/products/{product[0].lower()}.jpg",
        )  # fmt: skip


def purchases(events: Events, row: dict[str, str], signed: datetime) -> None:
    """The profile's orders: the newest at ``last_purchase_at``, older ones before it."""
    rng = events.rng
    last = parse(row["last_purchase_at"])
    orders = int(number(row["orders"])) if row["orders"].isdigit() else 0
    if last is None or orders <= 0 or last > AS_OF:
        return
    average = number(row["total_spent"]) / orders or 60.0
    when = last
    for _ in range(min(orders, 8)):
        if when < signed:
            break
        value = round(average * rng.uniform(0.6, 1.4), 2)
        if rng.random() < 0.4:
            events.add_to_cart(when - timedelta(minutes=rng.randint(5, 50)), rng.choice(PRODUCTS))
        events.add("purchase", when, value=f"{value:.2f}")
        when -= timedelta(days=rng.expovariate(1 / 45), hours=rng.uniform(0, 12))


def engagement(events: Events, temperature: str, signed: datetime) -> None:
    """Opens and clicks; the newest open sets the profile's last activity."""
    rng = events.rng
    _, (low, high), (fewest, most), click_rate = TEMPERATURES[temperature]
    newest = rng.uniform(low, high)
    for index in range(rng.randint(fewest, most)):
        when = ago(newest + (0 if index == 0 else rng.uniform(0, 150)))
        if when < signed:
            continue
        events.add("open", when)
        if rng.random() < click_rate:
            events.add("click", when + timedelta(minutes=rng.randint(1, 20)))
    if temperature in ("hot", "warm"):
        for _ in range(rng.randint(1, 4)):
            events.view(ago(newest + rng.uniform(0, 40)), rng.choice(PRODUCTS))


def triggers(events: Events) -> None:
    """Recent behaviour for the triggers: an abandoned cart, repeated views, browsing."""
    rng = events.rng
    draw = rng.random()
    if draw < 0.07:  # abandoned a cart 31 minutes to 23 hours ago
        start = rng.uniform(31 / 1440, 23 / 24)
        for product in rng.sample(PRODUCTS, rng.choice([1, 1, 2, 3])):
            events.view(ago(start + 0.01), product)
            events.add_to_cart(ago(start), product)
            start = max(31 / 1440, start - rng.uniform(0.001, 0.01))
    elif draw < 0.10:  # kept coming back to one product
        product = rng.choice(PRODUCTS)
        for _ in range(rng.randint(4, 6)):
            events.view(ago(rng.uniform(0.02, 0.9)), product)
    elif draw < 0.15:  # browsed several products, added none
        for product in rng.sample(PRODUCTS, rng.randint(3, 5)):
            events.view(ago(rng.uniform(0.02, 0.9)), product)
    elif draw < 0.152:  # an event type the feature code does not know: kept, no points
        events.add("reward_claimed", ago(rng.uniform(1, 20)))


def profile_events(row: dict[str, str], rng: random.Random) -> list[dict[str, str]]:
    """Every event of one profile."""
    events = Events(row["id"], rng)
    signed = parse(row["signed_up_at"]) or ago(400)
    names = list(TEMPERATURES)
    temperature = rng.choices(names, weights=[TEMPERATURES[n][0] for n in names])[0]
    if AS_OF - signed < timedelta(days=14):
        temperature = rng.choice(["hot", "warm"])
    purchases(events, row, signed)
    engagement(events, temperature, signed)
    if temperature in ("hot", "warm"):
        triggers(events)
    return events.rows


def main(out_dir: Path = HERE) -> None:
    rng = random.Random(SEED)
    with (out_dir / "profiles.csv").open(encoding="utf-8", newline="") as handle:
        profiles = list(csv.DictReader(handle))
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    for profile in profiles:
        if profile["id"] and profile["id"] not in seen:
            seen.add(profile["id"])
            rows.extend(profile_events(profile, rng))
    rows.sort(key=lambda r: (r["timestamp"], r["profile_id"]))
    for bad in BAD_ROWS:
        rows.insert(rng.randrange(len(rows) + 1), bad)
    with (out_dir / "events.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} events for {len(seen)} profiles to {out_dir / 'events.csv'}")


if __name__ == "__main__":
    main()
