#!/usr/bin/env bash
# Restores a dump made by backup.sh into an empty database (create it first):
#   DATABASE_URL=postgres://.../user_management_restored deploy/backup/restore.sh /backups/user-management-....dump
# Restore testing: run it regularly into a scratch database and compare (test/backup.test.ts does).
set -euo pipefail
: "${DATABASE_URL:?DATABASE_URL must name the (empty) database to restore into}"
dump="${1:?usage: restore.sh <dump file>}"
pg_restore --exit-on-error --single-transaction --no-owner --no-privileges --dbname="$DATABASE_URL" "$dump"
echo "restored $dump"
