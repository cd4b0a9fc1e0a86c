#!/bin/sh
# Refuses placeholder passwords (change-me…) before PostgreSQL initializes its data directory with them.
# Compose runs it as the postgres container's entrypoint, in front of the image's own:
#   sh /docker-entrypoint-initdb.d/00-refuse-placeholders.sh docker-entrypoint.sh postgres
# (the image also sources it during initialization, inside a function whose arguments are the init files: then
# $0 is the image's entrypoint, and it only checks). It must run
# before initdb: a failing init script leaves a data directory PostgreSQL considers initialized, and the
# roles would never be created. deploy/bin/wait_for.py refuses the same values in every platform container
# (aggregator_tests/deploy/test_placeholder_secrets.py runs both on one corpus).
for name in POSTGRES_PASSWORD DAGSTER_DB_PASSWORD WAREHOUSE_DB_PASSWORD PROXY_DB_PASSWORD BACKUP_DB_PASSWORD \
            SPECS_READER_DB_PASSWORD; do
  eval "value=\${$name:-}"
  # shellcheck disable=SC2154 # value is set by the eval above
  case "$(printf %s "$value" | tr '[:upper:]' '[:lower:]')" in
    change-me*|change_me*|"change me"*|changeme*|replace-me*|replace_me*|"replace me"*|replaceme*|\
    fill-me*|fill_me*|"fill me"*|fillme*|password|secret|placeholder)
      echo "postgres: refusing to start: $name holds a placeholder secret (change-me…): set a real value" \
           "(e.g. openssl rand -hex 24) in deploy/.env" >&2
      exit 1 ;;
  esac
done
unset name value
case "$0" in
  *00-refuse-placeholders.sh) exec "$@" ;;
esac
