"""Generate the demo campaign's profile list: ``profiles.csv`` and ``suppression.csv``.

The output is deterministic (``random.Random(2026)``, dates relative to a fixed
``AS_OF``, never the wall clock), so the shipped CSV files can be regenerated
byte for byte with ``python demo/make_profiles.py``.

The data is messy on purpose, the way real exports are: missing and blank first
names, names carrying markup, quotes, template syntax, emoji and right-to-left
text, invalid emails, duplicate ids, opted-out rows, non-numeric amounts,
unparseable dates, truncated JSON and empty optional values. A renderer must
reject or survive every one of them without leaking or executing anything.
"""

from __future__ import annotations

import csv
import json
import random
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

AS_OF = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
SEED = 2026
UNIQUE_PROFILES = 2475
DUPLICATE_ROWS = 25  # ~1% of rows repeat an earlier id
SUPPRESSED = 10
SHOP = "https://shop.example.com"
HERE = Path(__file__).resolve().parent

COLUMNS = [
    "id", "email", "first_name", "last_name", "city", "country", "email_opt_in",
    "signed_up_at", "last_purchase_at", "total_spent", "orders", "cart_items",
    "cart_updated_at", "recommendations", "loyalty_tier", "locale",
]  # fmt: skip

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella",
    "Lucas", "Mia", "Mateo", "Amelia", "Ethan", "Harper", "Aiden", "Evelyn", "Benjamin",
    "Chloé", "José", "Zoë", "Søren", "Łukasz", "Siobhán", "Priya", "Arjun", "Mei", "Hiroshi",
    "Fatima", "Omar", "Ingrid", "Mateus", "Ana", "Kwame", "Amara", "Nikolai", "Yuki",
    "Dmitri", "Aoife", "Björn", "Renée", "François", "Camila", "Diego", "Leila", "Tomás",
    "Grace", "Henry", "Ella", "Jack", "Lily", "Owen", "Nora", "Sam", "Ruth", "Felix",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Nguyen", "Kim", "Patel", "Chen", "Müller", "Schmidt", "Dubois", "Rossi", "Kowalski",
    "Novák", "Andersson", "Okafor", "Mensah", "Tanaka", "Sato", "O'Neill", "MacLeod",
    "da Silva", "van der Berg", "Ivanova", "Haddad", "Cohen", "Murphy", "Byrne",
]  # fmt: skip
CITIES = [  # (city, country, weight); New York is heavy so high_value_ny has members
    ("New York", "US", 16), ("Brooklyn", "US", 4), ("Los Angeles", "US", 8),
    ("Chicago", "US", 6), ("Austin", "US", 4), ("Seattle", "US", 4), ("Boston", "US", 4),
    ("Toronto", "CA", 5), ("Vancouver", "CA", 3), ("London", "GB", 8), ("Manchester", "GB", 3),
    ("Dublin", "IE", 3), ("Berlin", "DE", 4), ("München", "DE", 2), ("Paris", "FR", 4),
    ("Lyon", "FR", 2), ("Amsterdam", "NL", 3), ("Stockholm", "SE", 2), ("Madrid", "ES", 3),
    ("São Paulo", "BR", 3), ("Sydney", "AU", 4), ("Melbourne", "AU", 2), ("Tokyo", "JP", 2),
]  # fmt: skip
# The recipient's language (BCP 47) by country: the demo has French and German catalogs,
# everyone else reads English. One Canadian in three writes fr-CA (its catalog chain is
# fr_CA -> fr); a row without a country gets the campaign's default (en_US).
LOCALES = {
    "US": "en-US", "CA": "en-CA", "GB": "en-GB", "IE": "en-IE", "AU": "en-AU", "DE": "de-DE",
    "FR": "fr-FR", "NL": "en-GB", "SE": "en-GB", "ES": "en-GB", "BR": "en-US", "JP": "en-US",
}  # fmt: skip
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]
PRODUCTS = [  # (product_id, name, price)
    ("JP-1001", "Merino Crewneck Sweater", 89.00), ("JP-1002", "Cable-Knit Cardigan", 118.00),
    ("JP-1003", "Waxed Cotton Field Jacket", 245.00), ("JP-1004", "Quilted Liner Vest", 79.50),
    ("JP-1005", "Chelsea Boots, Oiled Leather", 189.00), ("JP-1006", "Wool Flannel Shirt", 68.00),
    ("JP-1007", "Cashmere Beanie", 45.00), ("JP-1008", "Lambswool Scarf", 39.95),
    ("JP-1009", "Selvedge Denim, Straight", 128.00), ("JP-1010", "Corduroy Trousers", 96.00),
    ("JP-1011", "Shearling-Lined Slippers", 72.00), ("JP-1012", "Down Puffer Coat", 310.00),
    ("JP-1013", "Ribbed Wool Socks, 3-Pack", 24.00), ("JP-1014", "Leather Gloves", 58.00),
    ("JP-1015", "Canvas Weekender Bag", 145.00), ("JP-1016", "Stoneware Mug Set", 42.00),
    ("JP-1017", "Plaid Wool Throw", 99.00), ("JP-1018", "Soy Candle, Cedar & Smoke", 28.00),
    ("JP-1019", "Fisherman Rollneck", 135.00), ("JP-1020", "Trail Running Shoes", 139.00),
    ("JP-1021", "Rain Shell, Packable", 159.00), ("JP-1022", "Henley, Waffle Knit", 49.00),
    ("JP-1023", "Leather Belt, Brass Buckle", 55.00), ("JP-1024", "Enamel Camp Kettle", 36.00),
]  # fmt: skip
HOSTILE_FIRST_NAMES = [
    "<b>Zoë</b>", 'O\'Brien "Bob"', "{{ 7*7 }}", "ليلى", "שירה", "Sam 🚀", "🎃",
    "<script>alert(1)</script>", "{% raw %}Eve", "Tom & Jerry", "${name}", "Ana\u202eRTL",
    "Ærøskøbing-" + "x" * 180, "محمد عبد الله", "Jo\u0301se\u0301", "'; DROP TABLE users;--",
]  # fmt: skip
HOSTILE_LAST_NAMES = ["<i>Smith</i>", 'Nguyễn "Win"', "الحسيني", "{{ last_name }}"]
BLANK_NAMES = [" ", "  ", "\t", "NaN", "null", "None", "N/A"]
BAD_AMOUNTS = ["n/a", "N/A", "n/a", "unknown", "-", "$89.90", "12O.50", "1.204,00"]
BAD_DATES = [
    "not a date", "31/13/2026", "2026-02-30T10:00:00Z", "yesterday", "0000-00-00 00:00:00",
    "20261105", "2026-13-01", "Nov 31 2026",
]  # fmt: skip
BROKEN_JSON = ['[{"product_id": "JP-1003", "name": "Waxed Cot', "[{'product_id': 'JP-1001'}]"]


def iso(moment: datetime) -> str:
    """Format a UTC datetime the way the export does."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(rng: random.Random, low: timedelta, high: timedelta) -> datetime:
    """A moment between ``low`` and ``high`` before AS_OF, to the second."""
    span = int((high - low).total_seconds())
    return AS_OF - low - timedelta(seconds=rng.randint(0, span))


def product_image(product_id: str) -> str:
    return f"{SHOP}/img/products/{product_id.lower()}.jpg"


def make_cart(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for product_id, name, price in rng.sample(PRODUCTS, rng.choice([1, 1, 2, 2, 3])):
        qty = rng.choice([1, 1, 1, 2, 3])
        items.append(
            {"product_id": product_id, "name": name, "price": price, "quantity": qty,
             "image_url": product_image(product_id)}
        )  # fmt: skip
    return items


def make_recommendations(rng: random.Random) -> list[dict[str, Any]]:
    picks = rng.sample(PRODUCTS, rng.choice([3, 4]))
    return [
        {"product_id": pid, "name": name, "price": price, "image_url": product_image(pid),
         "url": f"{SHOP}/p/{pid.lower()}?utm_source=email&utm_campaign=autumn-retail-2026"}
        for pid, name, price in picks
    ]  # fmt: skip


def tier_for(total: float) -> str:
    if total < 200:
        return "bronze"
    if total < 600:
        return "silver"
    return "gold" if total < 1500 else "platinum"


def purchase_history(rng: random.Random, signed_up: datetime) -> tuple[str, str, str, str]:
    """(last_purchase_at, total_spent, orders, loyalty_tier) as CSV strings."""
    is_new = AS_OF - signed_up < timedelta(days=14)
    if rng.random() < (0.7 if is_new else 0.08):
        return "", rng.choice(["0.00", "0.00", ""]), "0", ""
    window = rng.choices([(0, 90), (90, 120), (120, 1100)], weights=[42, 13, 45])[0]
    age = AS_OF - signed_up
    newest = max(timedelta(days=window[0]), min(timedelta(hours=2), age))
    oldest = min(timedelta(days=window[1]), age)
    if oldest <= newest:  # signed up after the drawn window: any time since signing up
        newest, oldest = min(timedelta(hours=2), age), age
    last = ago(rng, newest, oldest)
    orders = min(1 + int(rng.expovariate(1 / 5)), 60)
    total = round(sum(rng.lognormvariate(4.2, 0.6) for _ in range(orders)), 2)
    tier = tier_for(total) if rng.random() > 0.05 else ""
    return iso(last), f"{total:.2f}", str(orders), tier


def cart_state(rng: random.Random) -> tuple[str, str]:
    """(cart_items, cart_updated_at); roughly one profile in eight has a cart."""
    if rng.random() > 0.13:
        return "", ""
    window = rng.choices(
        [(timedelta(minutes=2), timedelta(minutes=29)),
         (timedelta(minutes=31), timedelta(hours=23, minutes=50)),
         (timedelta(days=1, hours=1), timedelta(days=20))],
        weights=[10, 55, 35],
    )[0]  # fmt: skip
    return json.dumps(make_cart(rng), ensure_ascii=False), iso(ago(rng, *window))


def ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower())
    return folded.replace(" ", "").replace("'", "").encode("ascii", "ignore").decode()


def make_email(rng: random.Random, first: str, last: str, number: int, used: set[str]) -> str:
    """A plausible, mostly unique address; some keep odd capitals or a +tag."""
    local = f"{ascii_slug(first)}.{ascii_slug(last)}".strip(".") or "customer"
    style = rng.random()
    if style < 0.3:
        local = f"{local}{number}"
    elif style < 0.4:
        local = f"{local[0]}{ascii_slug(last)}{number % 97}"
    elif style < 0.45:
        local = local.title()  # some exports keep the user's capitalisation
    elif style > 0.97:
        local = f"{local}+shop"
    email = f"{local}@{rng.choice(DOMAINS)}"
    if email.lower() in used:
        email = email.replace("@", f"{number}@", 1)
    used.add(email.lower())
    return email


def make_profile(rng: random.Random, number: int, used: set[str]) -> dict[str, str]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    city, country = rng.choices([(c, k) for c, k, _ in CITIES], [w for *_, w in CITIES])[0]
    new_signup = rng.random() < 0.06
    signed_up = ago(
        rng,
        timedelta(hours=1) if new_signup else timedelta(days=15),
        timedelta(days=13, hours=23) if new_signup else timedelta(days=2500),
    )
    last_purchase, total, orders, tier = purchase_history(rng, signed_up)
    cart, cart_updated = cart_state(rng)
    recs = json.dumps(make_recommendations(rng), ensure_ascii=False) if rng.random() < 0.87 else ""
    return {
        "id": f"C{number:06d}", "email": make_email(rng, first, last, number, used),
        "first_name": first, "last_name": last if rng.random() > 0.03 else "",
        "city": city if rng.random() > 0.04 else "",
        "country": country if rng.random() > 0.03 else "",
        "email_opt_in": "true", "signed_up_at": iso(signed_up), "last_purchase_at": last_purchase,
        "total_spent": total, "orders": orders, "cart_items": cart, "cart_updated_at": cart_updated,
        "recommendations": recs, "loyalty_tier": tier,
    }  # fmt: skip


def locale_for(row: dict[str, str]) -> str:
    """The row's locale from its country (and id), drawing nothing from the random
    stream: the other columns stay what they were before the column existed."""
    if row["country"] == "CA" and int(row["id"][1:]) % 3 == 0:
        return "fr-CA"
    return LOCALES.get(row["country"], "")


def break_email(rng: random.Random, email: str) -> str:
    local, domain = email.split("@", 1)
    return rng.choice([
        f"{local}{domain}",  # no @
        f"{local} @{domain}",  # space
        f"{local}@{domain.replace('.', '..', 1)}",  # double dot in domain
        f"{local}..x@{domain}",  # double dot in local part
        f"{local}@",  # no domain
        f" {local}@{domain} ".replace("@", "@@"),
    ])  # fmt: skip


def spread(
    rng: random.Random, rows: list[dict[str, str]], values: list[str]
) -> list[tuple[dict[str, str], str]]:
    """Pair each value with a different random row."""
    return list(zip(rng.sample(rows, len(values)), values, strict=True))


def add_mess(rng: random.Random, rows: list[dict[str, str]]) -> None:
    """Spoil a deterministic share of rows, each kind on its own random rows."""
    n = len(rows)
    for row in rng.sample(rows, round(n * 0.03)):
        row["first_name"] = ""
    for row in rng.sample(rows, round(n * 0.01)):
        row["first_name"] = rng.choice(BLANK_NAMES)
    for row in rng.sample(rows, round(n * 0.01)):
        row["email"] = break_email(rng, row["email"])
    for row in rng.sample(rows, round(n * 0.02)):
        row["email_opt_in"] = "false"
    for row, name in spread(rng, rows, HOSTILE_FIRST_NAMES):
        row["first_name"] = name
    for row, name in spread(rng, rows, HOSTILE_LAST_NAMES):
        row["last_name"] = name
    for row, amount in spread(rng, rows, BAD_AMOUNTS):
        row["total_spent"] = amount
    for row, bad in spread(rng, rows, BAD_DATES):
        row[rng.choice(["signed_up_at", "last_purchase_at", "cart_updated_at"])] = bad
    for row, broken in spread(rng, rows, BROKEN_JSON):
        row["cart_items"], row["cart_updated_at"] = broken, iso(AS_OF - timedelta(hours=3))
    for row in rng.sample(rows, round(n * 0.02)):
        row[rng.choice(["city", "loyalty_tier", "orders", "recommendations"])] = ""


def add_duplicates(rng: random.Random, rows: list[dict[str, str]]) -> None:
    """Re-export some profiles: same id, sometimes with newer data; inserted out of order."""
    for original in rng.sample(rows, DUPLICATE_ROWS):
        copy = dict(original)
        if rng.random() < 0.6:
            copy["email_opt_in"] = rng.choice(["true", "false"])
            copy["email"] = copy["email"].upper() if rng.random() < 0.5 else copy["email"]
        rows.insert(rng.randrange(rows.index(original) + 1, len(rows) + 1), copy)


def pick_suppressed(rng: random.Random, rows: list[dict[str, str]]) -> list[str]:
    """Valid, opted-in emails that do appear in the profiles."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["id"]] = counts.get(row["id"], 0) + 1
    eligible = [
        r["email"] for r in rows
        if r["email_opt_in"] == "true" and counts[r["id"]] == 1 and r["email"].count("@") == 1
        and " " not in r["email"] and ".." not in r["email"] and not r["email"].endswith("@")
    ]  # fmt: skip
    return rng.sample(eligible, SUPPRESSED)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(out_dir: Path = HERE) -> None:
    rng = random.Random(SEED)
    used: set[str] = set()
    rows = [make_profile(rng, n, used) for n in range(1, UNIQUE_PROFILES + 1)]
    add_mess(rng, rows)
    add_duplicates(rng, rows)
    suppressed = pick_suppressed(rng, rows)
    for row in rows:
        row["locale"] = locale_for(row)
    write_csv(out_dir / "profiles.csv", COLUMNS, rows)
    write_csv(out_dir / "suppression.csv", ["email"], [{"email": e} for e in suppressed])
    print(f"wrote {len(rows)} profiles and {len(suppressed)} suppressed addresses to {out_dir}")


if __name__ == "__main__":
    main()
