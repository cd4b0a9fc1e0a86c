#!/bin/sh
# Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d), as the superuser.
# Creates one login role per component with only its own database (roles.psql). Passwords come from the
# postgres container's environment (deploy/docker-compose.yml) and are passed as psql variables, never
# interpolated into SQL text by the shell.
set -eu
: "${DAGSTER_DB_PASSWORD:?}" "${WAREHOUSE_DB_PASSWORD:?}" "${PROXY_DB_PASSWORD:?}" "${BACKUP_DB_PASSWORD:?}"
: "${SPECS_READER_DB_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v dagster_role="${DAGSTER_DB_ROLE:-dagster}" -v dagster_db="${DAGSTER_DB_NAME:-dagster}" \
  -v warehouse_role="${WAREHOUSE_DB_ROLE:-warehouse}" -v warehouse_db="${WAREHOUSE_DB_NAME:-warehouse}" \
  -v proxy_role="${PROXY_DB_ROLE:-aggregator_proxy}" -v proxy_db="${PROXY_DB_NAME:-aggregator_proxy}" \
  -v backup_role="${BACKUP_DB_ROLE:-aggregator_backup}" \
  -v specs_reader_role="${SPECS_READER_DB_ROLE:-aggregator_specs_reader}" \
  -v dagster_password="$DAGSTER_DB_PASSWORD" -v warehouse_password="$WAREHOUSE_DB_PASSWORD" \
  -v proxy_password="$PROXY_DB_PASSWORD" -v backup_password="$BACKUP_DB_PASSWORD" \
  -v specs_reader_password="$SPECS_READER_DB_PASSWORD" \
  -f "${AGGREGATOR_INIT_DIR:-/docker-entrypoint-initdb.d}/roles.psql"
