#!/bin/sh
# pg_dump of each database in $BACKUP_DATABASES to $BACKUP_DIR/<database>/<UTC timestamp>.dump (custom format,
# compressed; restore with restore.sh), keeping the newest $BACKUP_KEEP dumps per database.
# Connection from the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE): never on the command line.
# The role needs read access to everything it dumps (PostgreSQL 14+: GRANT pg_read_all_data).
#
# Off the host (a backup on the disk it protects is lost with it), after each complete dump, either or both:
#   BACKUP_COPY_DIR       another volume (a second disk, NFS, another zone's volume): the dump is copied to
#                         $BACKUP_COPY_DIR/<database>/<timestamp>.dump and pruned there to the same count;
#   BACKUP_SHIP_COMMAND   a shell command run with the dump as $1 and its name <database>/<timestamp>.dump as $2,
#                         e.g. object storage:  aws s3 cp "$1" "s3://example-backups/aggregator/$2"
# A failed copy or ship fails the backup (the local dump is kept): an off-site copy that silently stops is
# worse than none.
set -eu
: "${BACKUP_DIR:?set BACKUP_DIR}" "${BACKUP_DATABASES:?set BACKUP_DATABASES (space-separated)}"
keep="${BACKUP_KEEP:-14}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

# Dumps and copies are written under a temporary name and renamed when complete: a half-written dump is never
# taken for a backup. Whatever ends this script early (a failed step, SIGTERM from a Job's deadline or
# `docker compose stop`, Ctrl-C) removes the file being written: left behind, the .partial files filled the
# volume, since pruning sees only *.dump. SIGKILL cannot be trapped: each run removes partial files older than
# a day that a killed run left (no backup runs that long: the CronJob's deadline is 6 h).
partial=""
cleanup() {
  if [ -n "$partial" ]; then rm -f "$partial"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Keep the newest $keep dumps in directory $1 (timestamps sort as text), and drop stale partial files.
prune() {
  find "$1" -maxdepth 1 -name '*.partial' -mmin +1440 -exec rm -f {} + -exec echo "backup: removed stale" {} +
  ls -1 "$1"/*.dump 2>/dev/null | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
    rm -f "$old" && echo "backup: pruned $old"
  done
}

# Copy $1 to $2 through a partial file. Chained with &&: `set -e` does not apply inside a function that is
# called as an `if` condition.
copy() {
  mkdir -p "$(dirname "$2")" && partial="$2.partial" && cp "$1" "$partial" && mv "$partial" "$2" && partial=""
}

for db in $BACKUP_DATABASES; do
  mkdir -p "$BACKUP_DIR/$db"
  dump="$BACKUP_DIR/$db/$stamp.dump"
  partial="$dump.partial"
  if ! pg_dump --format=custom --no-owner --no-acl --dbname="$db" --file="$partial"; then
    echo "backup: pg_dump of $db failed" >&2
    exit 1
  fi
  mv "$partial" "$dump"
  partial=""
  echo "backup: $db -> $dump ($(wc -c < "$dump") bytes)"
  prune "$BACKUP_DIR/$db"
  if [ -n "${BACKUP_COPY_DIR:-}" ]; then
    if ! copy "$dump" "$BACKUP_COPY_DIR/$db/$stamp.dump"; then
      echo "backup: copying $dump to $BACKUP_COPY_DIR failed" >&2
      exit 1
    fi
    echo "backup: $db -> $BACKUP_COPY_DIR/$db/$stamp.dump"
    prune "$BACKUP_COPY_DIR/$db"
  fi
  if [ -n "${BACKUP_SHIP_COMMAND:-}" ]; then
    if ! sh -c "$BACKUP_SHIP_COMMAND" backup-ship "$dump" "$db/$stamp.dump"; then
      echo "backup: BACKUP_SHIP_COMMAND failed for $dump (the local dump is kept)" >&2
      exit 1
    fi
    echo "backup: $db shipped as $db/$stamp.dump"
  fi
done
