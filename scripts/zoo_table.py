"""The README's zoo table, generated from the shipped model cards (never edited by hand).

Usage::

    .venv/bin/python scripts/zoo_table.py --write   # rewrite README.md between the zoo markers
    .venv/bin/python scripts/zoo_table.py --check   # exit 1 when README.md is out of date
    .venv/bin/python scripts/zoo_table.py --cards docs/leaderboard.json --write
        # first write each card's ``leaderboard`` section from that leaderboard's rows
        # (robustcv.leaderboard.card_numbers), then the README table from the cards

``tests/test_zoo.py`` runs the check, so the README and the cards cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from robustcv.core.errors import InputError
from robustcv.leaderboard import card_numbers
from robustcv.models.zoo import ZOO, ZOO_DIR, zoo_card

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- zoo:begin -->", "<!-- zoo:end -->"


def _ci(block: dict[str, Any] | None) -> str:
    if not block:
        return "–"
    lo, hi = block["ci95"]
    return f"{block['value']:.4f} ({lo:.4f}-{hi:.4f})"


def _recipe(card: dict[str, Any]) -> str:
    cfg = card.get("config", {})
    parts = [card["recipe"], f"{cfg.get('epochs')} epochs"]
    if card.get("architecture") != "small-cnn":
        parts.append(f"`--arch {card['architecture']}`")
    if not cfg.get("augment", True):
        parts.append("no augmentation")
    if card.get("data") != "fashion-mnist":
        parts.append(f"on `{card['data']}`")
    return ", ".join(parts)


def _headline(card: dict[str, Any]) -> str:
    """The default-ensemble robust accuracy of the card's leaderboard section."""
    rob = (card.get("leaderboard") or {}).get("robust_accuracy")
    if not rob or rob.get("value") is None:
        return "–"
    text = f"{rob['value']:.4f}"
    if rob.get("low") is not None and rob.get("high") is not None:
        text += f" ({rob['low']:.4f}-{rob['high']:.4f})"
    return text + f", N={rob['n']}" if rob.get("n") else text


def write_cards(leaderboard_json: Path) -> list[str]:
    """Write ``card.json["leaderboard"]`` of every zoo model that has a row; returns them."""
    board = json.loads(leaderboard_json.read_text(encoding="utf-8"))
    done = []
    for entry in ZOO:
        try:
            numbers = card_numbers(board, entry.name)
        except InputError:  # no row for this model
            continue
        path = ZOO_DIR / entry.name / "card.json"
        card = json.loads(path.read_text(encoding="utf-8"))
        card["leaderboard"] = numbers
        path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        done.append(entry.name)
    return done


def _train_time(card: dict[str, Any]) -> str:
    return f"{card['train_seconds'] / 60:.0f} min"


def table() -> str:
    """The markdown table: one row per zoo model, numbers from its card."""
    rows = [
        "| model | recipe | clean accuracy (test, N=10000, 95% CI) | robust accuracy, default "
        "ensemble, L-inf eps=0.1 (95% CI, N) | training time (card) |",
        "|---|---|---|---|---|",
    ]
    for entry in ZOO:
        card = zoo_card(entry.name)
        rows.append(
            f"| `zoo:{entry.name}` | {_recipe(card)} | {_ci(card['clean_accuracy'])} | "
            f"{_headline(card)} | {_train_time(card)} |"
        )
    return "\n".join(rows)


def render(text: str) -> str:
    """``text`` with the zoo section replaced by the current table."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} section")
    before, rest = text.split(BEGIN, 1)
    return before + BEGIN + "\n" + table() + "\n" + END + rest.split(END, 1)[1]


def main() -> int:
    """Write or check the README table; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true")
    p.add_argument("--check", action="store_true")
    p.add_argument("--cards", type=Path, help="leaderboard.json to write the cards' sections from")
    args = p.parse_args()
    if args.cards:
        print("wrote the leaderboard section of", ", ".join(write_cards(args.cards)) or "no card")
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if args.write:
        README.write_text(new, encoding="utf-8")
        print("wrote README.md zoo table")
        return 0
    if new != text:
        print("README.md's zoo table is out of date: run scripts/zoo_table.py --write")
        return 1
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
