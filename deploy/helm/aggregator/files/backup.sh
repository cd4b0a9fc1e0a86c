#!/bin/sh
# pg_dump of each database in $BACKUP_DATABASES to $BACKUP_DIR/<database>/<UTC timestamp>.dump (custom format,
# compressed; restore with restore.sh), keeping the newest $BACKUP_KEEP dumps per database.
# Connection from the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE): never on the command line.
# The role needs read access to everything it dumps (PostgreSQL 14+: GRANT pg_read_all_data).
set -eu
: "${BACKUP_DIR:?set BACKUP_DIR}" "${BACKUP_DATABASES:?set BACKUP_DATABASES (space-separated)}"
keep="${BACKUP_KEEP:-14}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
for db in $BACKUP_DATABASES; do
  mkdir -p "$BACKUP_DIR/$db"
  partial="$BACKUP_DIR/$db/$stamp.dump.partial"
  # Written under a temporary name and renamed when complete: a half-written dump is never taken for a backup,
  # and a failed one is removed (left behind, the .partial files filled the volume: pruning sees only *.dump).
  if ! pg_dump --format=custom --no-owner --no-acl --dbname="$db" --file="$partial"; then
    rm -f "$partial"
    echo "backup: pg_dump of $db failed" >&2
    exit 1
  fi
  mv "$partial" "$BACKUP_DIR/$db/$stamp.dump"
  echo "backup: $db -> $BACKUP_DIR/$db/$stamp.dump ($(wc -c < "$BACKUP_DIR/$db/$stamp.dump") bytes)"
  # Timestamps sort as text; delete all but the newest $keep.
  ls -1 "$BACKUP_DIR/$db"/*.dump | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
    rm -f "$old" && echo "backup: pruned $old"
  done
done
