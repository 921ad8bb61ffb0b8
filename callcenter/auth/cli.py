"""`callbot users ...` and `callbot token ...`: accounts and API tokens.

Passwords are read from the terminal (getpass, asked twice) or, when stdin is
not a terminal, from its first line; never from the command line, where they
would end up in shell history and `ps`. A new token is printed once, alone on
stdout; only its SHA-256 is stored.

Heavy imports (SQLAlchemy, argon2, settings) happen inside the commands so
that `callbot --help` stays quick.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from callcenter.auth.store import SqlAuthStore
    from callcenter.settings import Settings

__all__ = ["AUTH_COMMANDS", "add_subcommands", "run_auth_command", "token_command", "users_command"]

AUTH_COMMANDS = frozenset({"users", "token"})
_ROLES = ("dispatcher", "supervisor", "admin")

T = TypeVar("T")


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `users` and `token` to the `callbot` command's subparsers."""
    users = subparsers.add_parser("users", help="staff accounts (dispatcher, supervisor, admin)")
    users_actions = users.add_subparsers(dest="users_action", required=True)
    create = users_actions.add_parser(
        "create", help="add an account; the password is read from the terminal or stdin"
    )
    create.add_argument("name")
    create.add_argument("--role", choices=_ROLES, required=True)
    passwd = users_actions.add_parser("passwd", help="set a new password; ends the user's sessions")
    passwd.add_argument("name")

    token = subparsers.add_parser("token", help="API bearer tokens")
    token_actions = token.add_subparsers(dest="token_action", required=True)
    token_create = token_actions.add_parser("create", help="make a token and print it once")
    token_create.add_argument("--name", required=True)
    token_create.add_argument("--role", choices=_ROLES, required=True)
    token_revoke = token_actions.add_parser("revoke", help="revoke every token with this name")
    token_revoke.add_argument("--name", required=True)
    token_actions.add_parser("list", help="list tokens (never their secrets)")


def run_auth_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run `users ...` or `token ...`; the exit status."""
    if args.command == "users":
        return users_command(args, settings)
    return token_command(args, settings)


def users_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from callcenter.auth.errors import AuthError
    from callcenter.auth.models import parse_role

    try:
        password = _read_new_password()
        if args.users_action == "create":
            role = parse_role(args.role)
            _run(settings, lambda store: store.create_user(args.name, password, role))
            print(f"created user {args.name.strip().lower()} ({role.value})", file=sys.stderr)
        else:
            _run(settings, lambda store: store.set_password(args.name, password))
            print(f"password changed for {args.name.strip().lower()}", file=sys.stderr)
    except (AuthError, ValueError) as exc:
        print(f"callbot users: {exc}", file=sys.stderr)
        return 1
    return 0


def token_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from callcenter.auth.errors import AuthError
    from callcenter.auth.models import parse_role

    try:
        if args.token_action == "create":
            role = parse_role(args.role)
            new = _run(settings, lambda store: store.create_token(args.name, role))
            print(new.token)
            print(
                f"token {new.name} ({role.value}) created; it is shown only this once",
                file=sys.stderr,
            )
        elif args.token_action == "revoke":
            count = _run(settings, lambda store: store.revoke_tokens(args.name))
            print(f"revoked {count} token(s) named {args.name}", file=sys.stderr)
        else:
            for info in _run(settings, lambda store: store.list_tokens()):
                used = info.last_used_at.isoformat() if info.last_used_at else "never"
                state = "revoked" if info.revoked else "live"
                print(
                    f"{info.name}\t{info.role.value}\t{state}\t"
                    f"created {info.created_at.isoformat()}\tlast used {used}"
                )
    except (AuthError, ValueError) as exc:
        print(f"callbot token: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(settings: Settings | None, work: Callable[[SqlAuthStore], Awaitable[T]]) -> T:
    """Open the store on the service's database, do `work`, close it."""
    from callcenter.auth.store import SqlAuthStore
    from callcenter.settings import Settings

    store = SqlAuthStore((settings or Settings()).resolved_database_url)

    async def go() -> T:
        try:
            await store.create_schema()
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(go())


def _read_new_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first
