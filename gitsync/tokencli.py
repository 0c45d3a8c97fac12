"""``gitsync token create|list|revoke``: scoped, expiring API tokens through a running
controller's API (``/api/v1/tokens``, global admins only; see ``gitsync.web.tokens``).

Like ``gitsync app``, it reads the server from ``--server`` / ``$GITSYNC_SERVER`` and the
caller's token from ``--token-file`` / ``$GITSYNC_TOKEN``. ``create`` prints the new token once,
alone on stdout (so ``GITSYNC_TOKEN=$(gitsync token create ...)`` works); nothing else ever
shows it again.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from gitsync.appcli import UsageError, _connection_args, client_from
from gitsync.appclient import EXIT_ERROR, EXIT_OK, ClientError, dump, table

if TYPE_CHECKING:
    _Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

ROLES = ("viewer", "operator", "admin")


def _run(args: argparse.Namespace) -> int:
    try:
        client = client_from(args)
        command = args.token_command
        if command == "create":
            doc: Any = client.post(
                "/tokens",
                {
                    "name": args.name,
                    "role": args.role,
                    "projects": args.project,
                    "expires": args.expires,
                },
            )
            sys.stderr.write(
                f"token {doc.get('name')} ({doc.get('role')} on {', '.join(args.project)}) "
                f"expires {doc.get('expiresAt')}; it is shown only this once\n"
            )
            sys.stdout.write(str(doc.get("token", "")) + "\n")
        elif command == "list":
            items = client.get("/tokens").get("items") or []
            if args.output in ("json", "yaml"):
                sys.stdout.write(dump({"items": items}, args.output))
            else:
                rows = [
                    [
                        i.get("name"),
                        i.get("role"),
                        ",".join(i.get("projects") or ()),
                        i.get("expiresAt"),
                        "yes" if i.get("expired") else "no",
                        i.get("createdBy"),
                    ]
                    for i in items
                ]
                header = ["NAME", "ROLE", "PROJECTS", "EXPIRES", "EXPIRED", "CREATED BY"]
                sys.stdout.write(table(header, rows))
        else:
            client.post(f"/tokens/{args.name}/revoke", {})
            sys.stderr.write(f"token {args.name} revoked\n")
        return EXIT_OK
    except (UsageError, ValueError, ClientError) as exc:
        sys.stderr.write(f"gitsync token {args.token_command}: {exc}\n")
        return EXIT_ERROR


def add_token_parser(sub: _Subcommands) -> None:
    token = sub.add_parser(
        "token",
        help="create, list and revoke scoped API tokens (global admin)",
        description="Scoped, expiring API tokens for CI and the CLI, kept as digests in the "
        "controller's Secret gitsync-api-tokens. Needs a global admin's GITSYNC_TOKEN.",
    )
    token.set_defaults(func=_run)
    commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = commands.add_parser("create", help="mint a token; prints it once on stdout")
    _connection_args(create, output=False)
    create.add_argument("--name", required=True, help="the token's name (a DNS label)")
    create.add_argument(
        "--project",
        action="append",
        required=True,
        metavar="GLOB",
        help="namespace glob the token acts in (repeatable), e.g. team-a or 'team-a-*'",
    )
    create.add_argument("--role", required=True, choices=ROLES, help="its role there")
    create.add_argument(
        "--expires", required=True, metavar="DURATION", help="lifetime, e.g. 30m, 24h, 7d"
    )
    listing = commands.add_parser("list", help="the tokens, their scope and expiry")
    _connection_args(listing, output=False)
    listing.add_argument(
        "-o", "--output", choices=("table", "json", "yaml"), default="table", help="the format"
    )
    revoke = commands.add_parser("revoke", help="end a token now")
    _connection_args(revoke, output=False)
    revoke.add_argument("name", help="the token's name")
