#!/usr/bin/env bash
# Logical backup of the service's database: pg_dump in custom format (compressed, restorable
# table by table with pg_restore), one file per run, files older than BACKUP_RETENTION_DAYS
# removed. Run it daily (cron, a systemd timer or a Kubernetes CronJob); see README.md.
#   DATABASE_URL=postgres://... BACKUP_DIR=/backups deploy/backup/backup.sh
set -euo pipefail
: "${DATABASE_URL:?DATABASE_URL must name the database to back up}"
: "${BACKUP_DIR:?BACKUP_DIR must name the directory the dumps go to}"
retention_days="${BACKUP_RETENTION_DAYS:-30}"

mkdir -p "$BACKUP_DIR"
file="$BACKUP_DIR/user-management-$(date -u +%Y%m%dT%H%M%SZ).dump"
# Written under a temporary name and renamed when complete: a failed run leaves no file that
# looks like a backup.
pg_dump --format=custom --no-owner --no-privileges --file="$file.partial" "$DATABASE_URL"
mv "$file.partial" "$file"
echo "backup written: $file ($(du -h "$file" | cut -f1))"

find "$BACKUP_DIR" -maxdepth 1 -name 'user-management-*.dump' -mtime "+$((retention_days - 1))" -print -delete |
  sed 's/^/removed (older than '"$retention_days"' days): /'
