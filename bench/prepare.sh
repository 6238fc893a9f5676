#!/usr/bin/env bash
# What `make bench` needs outside the virtualenv: wrk (the load generator) and a running
# PostgreSQL, installed from Debian's packages when missing and started when stopped, as
# .ci/run does for the tests.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  apt-get install -y -qq "$@" >/dev/null
}
if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk"
  apt_install wrk
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "bench: installing PostgreSQL"
  apt_install postgresql
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "bench: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q
