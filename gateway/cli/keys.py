"""``hybrid-gateway keys create|list|revoke``: manage a structured keys file without ever keeping a key.

``create`` draws a key with ``secrets``, prints it once on stdout (the only time it exists outside the
client that receives it) and stores its SHA-256 digest; ``list`` shows names, limits and digest prefixes;
``revoke`` marks a key revoked (its name stays taken, so its spend history never passes to another key).
The file is the gateway's ``HYBRID_GATEWAY_API_KEYS_FILE`` (``--file``), which a running gateway re-reads within
its reload interval (``gateway.client_keys``). Exit 0 on success, 1 on a refused change, 2 on a file that does
not load.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import secrets
import sys
from pathlib import Path

from gateway.api_keys import (
    DIGEST_PREFIX,
    KEY_NAME,
    KeyEntry,
    KeysFile,
    KeysFileError,
    is_structured,
    load_keys,
    save_keys,
)
from gateway.cli.arguments import non_negative, positive_int
from gateway.settings import digest_key
from gateway.tables import render_table

KEY_PREFIX = "sk-hg-"
_FILE_VARIABLE = "HYBRID_GATEWAY_API_KEYS_FILE"


def _key_name(text: str) -> str:
    if not re.fullmatch(KEY_NAME, text):
        raise argparse.ArgumentTypeError(f"{text!r}: a key name is 1-64 of A-Z a-z 0-9 . _ -, starting with a "
                                         "letter or digit (it becomes a metric label)")
    return text


def _routes(text: str) -> tuple[str, ...]:
    routes = tuple(part.strip() for part in text.split(",") if part.strip())
    if not routes:
        raise argparse.ArgumentTypeError("list at least one route, comma-separated")
    return routes


def _keys_file(args: argparse.Namespace) -> tuple[Path, KeysFile] | int:
    """The file and what it holds, or the exit status after saying why it cannot be used."""
    if not args.file:
        print(f"error: name the keys file with --file or ${_FILE_VARIABLE}", file=sys.stderr)
        return 2
    path = Path(args.file)
    if not is_structured(path):
        print(f"error: {path} is not a structured keys file: it must end in .yaml or .yml (a file of plain keys, "
              "one a line, stays supported but has no names or limits)", file=sys.stderr)
        return 2
    try:
        return path, load_keys(path)
    except KeysFileError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2


def _create(args: argparse.Namespace) -> int:
    found = _keys_file(args)
    if isinstance(found, int):
        return found
    path, keys = found
    if args.name in keys.keys:
        state = " (revoked)" if keys.keys[args.name].revoked else ""
        print(f"error: {path} already has a key named {args.name!r}{state}: names are never reused, pick another",
              file=sys.stderr)
        return 1
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = KeyEntry(digest=DIGEST_PREFIX + digest_key(key), rpm=args.rpm, tpm=args.tpm,
                     monthly_budget_usd=args.budget_usd, routes=args.routes,
                     created=datetime.datetime.now(datetime.UTC).date())
    save_keys(path, keys.model_copy(update={"keys": {**keys.keys, args.name: entry}}))
    print(key)
    print(f"created key {args.name!r} in {path}: the line above is the key, shown this once and stored nowhere. "
          "Restart the gateway to accept it.", file=sys.stderr)
    return 0


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _list(args: argparse.Namespace) -> int:
    found = _keys_file(args)
    if isinstance(found, int):
        return found
    path, keys = found
    if not keys.keys:
        print(f"no keys in {path}", file=sys.stderr)
        return 0
    rows = [["name", "digest", "rpm", "tpm", "budget_usd", "routes", "created", "status"]]
    for name, entry in keys.keys.items():
        rows.append([name, entry.digest[:19] + "...", _cell(entry.rpm), _cell(entry.tpm),
                     _cell(entry.monthly_budget_usd), ",".join(entry.routes) if entry.routes else "all",
                     _cell(entry.created), "revoked" if entry.revoked else "active"])
    print("\n".join(render_table(rows)))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    found = _keys_file(args)
    if isinstance(found, int):
        return found
    path, keys = found
    entry = keys.keys.get(args.name)
    if entry is None:
        known = ", ".join(keys.keys) or "none"
        print(f"error: no key named {args.name!r} in {path} (keys: {known})", file=sys.stderr)
        return 1
    if entry.revoked:
        print(f"key {args.name!r} was already revoked", file=sys.stderr)
        return 0
    revoked = entry.model_copy(update={"revoked": True})
    save_keys(path, keys.model_copy(update={"keys": {**keys.keys, args.name: revoked}}))
    print(f"revoked key {args.name!r} in {path}; gateways reading this file refuse it within their reload "
          f"interval", file=sys.stderr)
    return 0


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser("keys", help="named client keys with limits (a structured keys file)")
    commands = keys.add_subparsers(dest="keys_command", required=True)
    default_file = os.environ.get(_FILE_VARIABLE)

    create = commands.add_parser("create", help="make a key, print it once, store only its digest")
    create.add_argument("name", type=_key_name)
    create.add_argument("--rpm", type=positive_int, help="requests per minute")
    create.add_argument("--tpm", type=positive_int, help="tokens per minute (prompt and completion)")
    create.add_argument("--budget-usd", type=non_negative, help="monthly budget in USD (UTC calendar month)")
    create.add_argument("--routes", type=_routes, help="comma-separated routes it may call (default: all)")
    create.set_defaults(command=_create)

    listing = commands.add_parser("list", help="names, limits and digest prefixes (never keys)")
    listing.set_defaults(command=_list)

    revoke = commands.add_parser("revoke", help="refuse a key from the next gateway start on")
    revoke.add_argument("name")
    revoke.set_defaults(command=_revoke)

    for command in (create, listing, revoke):
        command.add_argument("--file", default=default_file,
                             help=f"the keys file, .yaml or .yml (default: ${_FILE_VARIABLE})")
