#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume: the official image
# runs /docker-entrypoint-initdb.d/*.sh as its superuser (POSTGRES_USER) after creating
# POSTGRES_DB. A volume initialised before this script existed keeps its old roles.
#
# Why (issue 24): nothing bplab runs should log in as a superuser, for whom a READ ONLY
# transaction does not stop COPY ... TO PROGRAM or pg_read_file.
# - bplab: the role the migration, the workers and the CLI use (BPLAB_DATABASE_URL). It owns
#   the database, so it may create and write bplab's tables, and nothing more.
# - bplab_reader: the role `bplab sql` logs in as. Migration 0005, run as bplab (which may not
#   create roles), finds it here and grants it SELECT on bplab's tables and views only.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v dbname="$POSTGRES_DB" \
  -v app_password="$BPLAB_APP_PASSWORD" \
  -v sql_password="$BPLAB_SQL_PASSWORD" <<'SQL'
CREATE ROLE bplab LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
ALTER DATABASE :"dbname" OWNER TO bplab;
CREATE ROLE bplab_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
  PASSWORD :'sql_password';
SQL
