#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, and every test on SQLite and on a throwaway
# PostgreSQL started here on a loopback port. Installs what the tests need first (Debian):
# openssh-client/openssh-server (and sudo, openssl for the test users) for the SSH tests, which
# start a real sshd on loopback; dash and busybox for the probe's shells;
# PostgreSQL's server binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_packages=()
command -v ssh-keygen >/dev/null 2>&1 || need_packages+=(openssh-client)
[ -x /usr/sbin/sshd ] || need_packages+=(openssh-server)
command -v busybox >/dev/null 2>&1 || need_packages+=(busybox)
command -v dash >/dev/null 2>&1 || need_packages+=(dash)
command -v sudo >/dev/null 2>&1 || need_packages+=(sudo)
command -v openssl >/dev/null 2>&1 || need_packages+=(openssl)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need_packages+=(postgresql)
if [ ${#need_packages[@]} -gt 0 ]; then
  log "installing ${need_packages[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# A real SMTP server for the email channel tests (aiosmtpd, from PyPI).
python3 -c 'import aiosmtpd' 2>/dev/null || { log "installing aiosmtpd"; python3 -m pip install -q aiosmtpd; }

# A throwaway PostgreSQL cluster on a free loopback port, removed on exit.
pg_dir=$(mktemp -d /tmp/hostwatch-pg.XXXXXX)
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" -eq 0 ] && chown postgres "$pg_dir"
cleanup() {
  run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap cleanup EXIT
log "starting PostgreSQL ($pg_bin) on 127.0.0.1:$pg_port"
run_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 >/dev/null
run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o \
  "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
export HOSTWATCH_TEST_PG_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings
log "cargo test (SQLite and PostgreSQL)"
results="$pg_dir/test-output"
set +e
cargo test --workspace --no-fail-fast -- --test-threads 4 2>&1 | tee "$results"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo's last lines are per-binary, often 0-test doctests).
awk '/^test result:/ { p += $4; f += $6 } END { printf "summary: %d passed, %d failed\n", p, f }' "$results"
exit "$status"
