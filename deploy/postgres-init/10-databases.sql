-- Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d).
-- POSTGRES_DB creates `dagster` (runs, event logs, schedules); the warehouse and the proxy's users, tokens
-- and audit log get databases of their own so each can be backed up, sized and restored separately.
CREATE DATABASE warehouse;
CREATE DATABASE aggregator_proxy;
