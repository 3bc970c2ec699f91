#!/usr/bin/env bash
# Turns on TLS in the local PostgreSQL test cluster (127.0.0.1:5432, run by .ci/run) for the
# host's pg_tls tests: a self-signed test CA and a server certificate for localhost/127.0.0.1
# in the cluster's data dir, `ssl = on`, then a reload. Plain connections keep working
# (pg_hba's `host` lines match both). Idempotent: existing certificates are kept.
# Writes the CA to $KASANE_PG_TLS_CA_OUT (default /etc/ssl/kasane-test-pg-ca.pem) and
# prints that path last, for `export KASANE_TEST_PG_TLS_CA=...`. (Not under /etc/postgresql:
# .ci/run takes the newest entry there to be the server's version.)
set -euo pipefail

if ! command -v openssl >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
fi

ca_out="${KASANE_PG_TLS_CA_OUT:-/etc/ssl/kasane-test-pg-ca.pem}"
pg_version="$(ls -d /etc/postgresql/*/main | sort -V | tail -n 1 | cut -d/ -f4)"
psql_admin() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atc "$1"; }

data_dir="$(psql_admin 'SHOW data_directory')"
tls_dir="$data_dir/kasane-tls"
ca_key="$tls_dir/ca.key"
ca_cert="$tls_dir/ca.pem"
server_key="$tls_dir/server.key"
server_cert="$tls_dir/server.pem"

if ! [ -s "$ca_cert" ] || ! [ -s "$server_cert" ] || ! [ -s "$server_key" ] \
  || ! openssl verify -CAfile "$ca_cert" "$server_cert" >/dev/null 2>&1; then
  rm -rf "$tls_dir"
  install -d -m 0700 -o postgres -g postgres "$tls_dir"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 -sha256 \
    -subj "/CN=Kasane test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$ca_key" -out "$ca_cert" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
    -keyout "$server_key" -out "$work/server.csr" 2>/dev/null
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$work/server.ext"
  openssl x509 -req -in "$work/server.csr" -CA "$ca_cert" -CAkey "$ca_key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$work/server.ext" \
    -out "$server_cert" 2>/dev/null
  rm -f "$tls_dir/ca.srl"
fi
chown postgres:postgres "$tls_dir"/*
chmod 0600 "$ca_key" "$server_key"
chmod 0644 "$ca_cert" "$server_cert"

psql_admin "ALTER SYSTEM SET ssl_cert_file = '$server_cert'" >/dev/null
psql_admin "ALTER SYSTEM SET ssl_key_file = '$server_key'" >/dev/null
psql_admin "ALTER SYSTEM SET ssl = on" >/dev/null
pg_ctlcluster --skip-systemctl-redirect "$pg_version" main reload
for _ in $(seq 1 30); do
  [ "$(psql_admin 'SHOW ssl' 2>/dev/null || true)" = on ] && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432 -q
[ "$(psql_admin 'SHOW ssl')" = on ] || { echo "postgres-tls: ssl did not turn on" >&2; exit 1; }
# The server really answers TLS, and plain connections still work.
psql "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$ca_cert" \
  -Atc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' | grep -x t >/dev/null
psql "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable" -Atc 'SELECT 1' | grep -x 1 >/dev/null

install -m 0644 "$ca_cert" "$ca_out"
echo "$ca_out"
