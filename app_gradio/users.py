"""``python -m app_gradio.users hash NAME``: make a login entry for the web app.

The password is read from standard input when it is not a terminal (first line), else asked
for twice without echo. The entry printed goes into FRAUD_APP_USERS (comma-separated, and
single-quoted in ``.env`` so Compose leaves the ``$`` signs alone) or, one a line, into the
file FRAUD_APP_USERS_FILE names.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from app_gradio.auth import DEFAULT_ITERATIONS, UsersError, check_name, entry

EPILOG = """\
examples:
  python -m app_gradio.users hash alice                   # asks for the password twice
  printf '%s\\n' "$PASSWORD" | python -m app_gradio.users hash alice
  python -m app_gradio.users hash bob >> /etc/fraud-app/users

then, in .env:
  FRAUD_APP_USERS='alice:pbkdf2_sha256$600000$...,bob:pbkdf2_sha256$600000$...'
or FRAUD_APP_USERS_FILE=/etc/fraud-app/users (one entry a line, # comments allowed).
"""


def read_password(stdin=None) -> str:  # noqa: ANN001 - a text stream
    """The first line of a piped stdin, else a confirmed prompt on the terminal."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise UsersError("the two passwords differ")
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app_gradio.users",
        description="Make login entries for the fraud web app (PBKDF2-HMAC-SHA256).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    make = commands.add_parser(
        "hash",
        help="print a name:pbkdf2_sha256$... entry for NAME",
        description="Print NAME's login entry. The password comes from stdin when piped\n"
        "(its first line), else from a prompt asked twice without echo.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    make.add_argument("name", metavar="NAME", help="the analyst's login name (no spaces or :,#$)")
    make.add_argument(
        "--iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS:,}; fewer are cheaper to guess)",
    )
    args = parser.parse_args(argv)
    try:
        check_name(args.name)
        if args.iterations < 1:
            raise UsersError("--iterations must be at least 1")
        password = read_password()
        if not password:
            raise UsersError("the password is empty")
        print(entry(args.name, password, args.iterations))
    except UsersError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
