"""Print a PgBouncer userlist.txt line with the SCRAM-SHA-256 verifier of a role's password.

Where pg_authid cannot be read (RDS, Cloud SQL), PgBouncer's `auth_file` still needs each role's verifier. This
computes it as PostgreSQL does (RFC 7677, 4096 iterations, 16-byte salt), from the password on stdin, so the
password never appears in the process list or the shell history:

    printf %s "$DAGSTER_PW" | python deploy/bin/scram_verifier.py dagster >> userlist.txt
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import sys

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, the form pg_authid holds."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", help="PostgreSQL role name")
    args = parser.parse_args(argv)
    password = sys.stdin.read().rstrip("\n")
    if not password:
        parser.error("no password on stdin")
    print(f'"{args.role}" "{verifier(password)}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
