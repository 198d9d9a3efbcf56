#!/usr/bin/env bash
# hostwatch benchmark (not a test): prints the machine, the commit, and
#   A. polls/s against a real OpenSSH sshd on loopback: hostwatch's poller vs `ssh` subprocesses
#      (a new connection per poll) vs `sh` locally (the floor);
#   B. a simulated fleet (src/bin/fleetsim.rs) of 100, 1,000 and 10,000 hosts on a 10 s schedule:
#      polls on time / late / missed, latency, CPU, memory, samples written;
#   C. the 10,000-host fleet as bare SSH connections (no parse, store or scheduler): what the
#      connection alone costs in memory and CPU;
#   H. history on SQLite and PostgreSQL: bytes per poll (raw tier) and per host per day (all
#      tiers), the write path's CPU per poll with rollups, and 24 h / 30-day chart latency in a
#      database holding 10,000 hosts' rollups.
# Usage: scripts/bench.sh [--quick]   (--quick: shorter windows, up to 1,000 hosts)
# Needs root (it creates the user hwbench for sshd). Takes about 10 minutes after a release build
# (a cold one adds about 4 minutes on the 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${1:-}
seconds=60
sizes="100 1000 10000"
if [ "$quick" = "--quick" ]; then seconds=20; sizes="100 1000"; fi

log() { printf '==> %s\n' "$*" >&2; }
[ -x /usr/sbin/sshd ] || { apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null; }

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB memory, $(uname -sr)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"

log "building (profiling: release with line tables)"
cargo build --profile profiling --features bench --bin bench --bin fleetsim 2>&1 | tail -n 1 >&2

# A real sshd on a free loopback port, with a dedicated user whose shell is /bin/sh.
work=$(mktemp -d /tmp/hostwatch-bench.XXXXXX)
cleanup() {
  [ -f "$work/sshd.pid" ] && kill "$(cat "$work/sshd.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
id hwbench >/dev/null 2>&1 || useradd -m -s /bin/sh hwbench
# sshd runs without PAM: the account needs a password hash (not '!') to be usable, even for keys.
usermod -p "$(openssl passwd -6 "bench-$RANDOM-$RANDOM")" hwbench
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
cp "$work/id.pub" "$work/authorized_keys"
# sshd reads the key file as the user.
chmod 755 "$work"
chmod 644 "$work/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
UsePAM no
StrictModes no
PasswordAuthentication no
MaxStartups 200
MaxSessions 64
LogLevel ERROR
UseDNS no
CONF
/usr/sbin/sshd -f "$work/sshd_config" -E "$work/sshd.log"
for _ in $(seq 50); do [ -f "$work/sshd.pid" ] && break; sleep 0.1; done

echo
./target/profiling/bench a --port "$port" --user hwbench --key "$work/id" --parallel 8 --seconds 20 --rounds 5
long_window=$((seconds * 3 / 2))
for n in $sizes; do
  echo
  # At 10,000 hosts memory levels off only after each host's first ~12 polls: a longer window
  # makes the RSS figure the steady one.
  window=$seconds
  if [ "$n" -ge 10000 ]; then window=$long_window; fi
  # An hour of past polls per host first: in an empty database the hosts of a start slot share
  # the pages of the per-host indexes, which flattered the CPU per poll by ~15 % at 10,000 hosts.
  ./target/profiling/bench b --hosts "$n" --sim ./target/profiling/fleetsim --seconds "$window" --history-minutes 60
done
if [ "$quick" != "--quick" ]; then
  echo
  # The largest fleet once more as bare SSH connections: how much of B's memory and CPU per
  # host is the connection itself.
  ./target/profiling/bench c --hosts 10000 --sim ./target/profiling/fleetsim --seconds "$long_window"
fi
echo
./target/profiling/bench h --hosts "$(if [ "$quick" = "--quick" ]; then echo 1000; else echo 10000; fi)"
# The same on PostgreSQL: a throwaway cluster on a free loopback port.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
  pg_dir="$work/pg"; mkdir -p "$pg_dir"; chown postgres "$pg_dir"
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  runuser -u postgres -- "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 >/dev/null
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o \
    "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
  echo
  ./target/profiling/bench h --hosts "$(if [ "$quick" = "--quick" ]; then echo 1000; else echo 10000; fi)" \
    --database-url "postgres://postgres@127.0.0.1:$pg_port/postgres"
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null
else
  log "no PostgreSQL here (apt-get install postgresql): part H on SQLite only"
fi
echo
echo "targets (2 cores): A >= 10x ssh and >= 0.5x local sh; B at 10,000 hosts >= 99.9 % on time,"
echo "CPU <= 100 % of one core, <= 200 us CPU per poll, RSS <= 100 KiB per host;"
echo "H raw tier <= 200 bytes a poll on SQLite, 30-day chart p99 <= 50 ms, 24 h chart p99 <= 20 ms"
