#!/bin/sh
# Restore one dump made by backup.sh into a database:  restore.sh <dump file> <target database>
# The target must exist and be empty (create it with the owner role first, see docs/deploy.md); restoring into
# a fresh database and switching the URL over is safer than overwriting the live one.
# Objects are owned by the connecting role (the dump is made with --no-owner --no-acl): connect as the role
# that should own them (PGUSER). Stops at the first error.
set -eu
dump="${1:?usage: restore.sh <dump file> <target database>}"
target="${2:?usage: restore.sh <dump file> <target database>}"
pg_restore --exit-on-error --no-owner --no-acl --single-transaction --dbname="$target" "$dump"
echo "restore: $dump -> $target"
