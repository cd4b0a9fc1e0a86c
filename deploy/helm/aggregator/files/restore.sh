#!/bin/sh
# Restore one dump made by backup.sh into a database:  restore.sh <dump file> <target database>
# The target must exist and be empty (create it with the owner role first, see docs/deploy.md); restoring into
# a fresh database and switching the URL over is safer than overwriting the live one.
# Objects are owned by the connecting role (the dump is made with --no-owner --no-acl): connect as the role
# that should own them (PGUSER). Stops at the first error.
#
# The target is closed first, as postgres-init/roles.psql closes every database: CREATE DATABASE lets every
# role connect (PUBLIC), and a restored database renamed into place kept that, open to the proxy's and the
# runs' roles. Only its owner and the backup role ($BACKUP_ROLE, default aggregator_backup) may connect.
set -eu
dump="${1:?usage: restore.sh <dump file> <target database>}"
target="${2:?usage: restore.sh <dump file> <target database>}"
psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 --dbname="$target" -v db="$target" \
  -v backup_role="${BACKUP_ROLE:-aggregator_backup}" <<'SQL'
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"backup_role";
-- A role that does not own the database gets only a warning from REVOKE: check that it is really closed.
DO $$ BEGIN
  IF has_database_privilege('public', current_database(), 'CONNECT') THEN
    RAISE EXCEPTION 'restore: % is still open to every role (PUBLIC): run restore.sh as its owner (PGUSER)',
      current_database();
  END IF;
END $$;
SQL
pg_restore --exit-on-error --no-owner --no-acl --single-transaction --dbname="$target" "$dump"
echo "restore: $dump -> $target (closed to every role but its owner and ${BACKUP_ROLE:-aggregator_backup})"
