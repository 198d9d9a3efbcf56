#!/usr/bin/env bash
# API conformance with schemathesis (not part of the test suite: about 17 minutes, most of it
# long polls of GET /api/v1/notifications, which the coverage phase tries at wait_seconds=60).
# Every operation of the spec, checks status_code_conformance and response_schema_conformance.
# Runs the service and schemathesis in a fresh network namespace that has only loopback, so
# nothing the fuzzer registers (hosts, URL checks, webhooks) can reach another machine.
# Usage (as root): scripts/conformance.sh [extra schemathesis flags]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d /tmp/hostwatch-conformance.XXXXXX)
venv=${SCHEMATHESIS_VENV:-/tmp/hostwatch-schemathesis-venv}
# Python 3.13: under 3.11, hypothesis's ast.parse fails in worker threads ("AST constructor
# recursion depth mismatch"), which schemathesis reports as an error of its own.
pick_python() {
  for p in "${PYTHON:-}" python3.13 /root/.pyenv/versions/3.13*/bin/python3 python3; do
    [ -n "$p" ] && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null && { echo "$p"; return; }
  done
  echo python3
}
python=$(pick_python)
[ -x "$venv/bin/schemathesis" ] || { "$python" -m venv "$venv" && "$venv/bin/pip" install -q schemathesis; }
cargo build --bin hostwatch 2>&1 | tail -n 1 >&2
cat >"$work/schemathesis.toml" <<'TOML'
# Path ids point at the resources created first (each the first of its kind), so operations on
# one resource reach it instead of answering 404 to random ids.
[parameters]
"path.id" = 1
TOML
cat >"$work/inside.sh" <<'INSIDE'
#!/usr/bin/env bash
set -u
ip link set lo up
"$REPO/target/debug/hostwatch" serve --data-dir "$WORK/data" --listen 127.0.0.1:18080 >"$WORK/service.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
api=http://127.0.0.1:18080/api/v1
admin=$(cat "$WORK/data/admin.token")
post() { curl -s -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d "$2" "$api$1"; echo; }
# One of each resource (id 1), on loopback ports nothing listens on.
post /hosts '{"name":"seed","address":"127.0.0.1","port":1,"username":"nobody","password":"seed-password"}' >/dev/null
post /url-checks '{"name":"seed","url":"http://127.0.0.1:1/"}' >/dev/null
post /channels '{"name":"seed","kind":"webhook","settings":{"url":"http://127.0.0.1:1/hook"}}' >/dev/null
# The fuzzer works as its own admin (user 2, token 2): what it does to user 1 and token 1, the
# first admin's, does not lock it out.
post /users '{"username":"st","password":"st-password-123456","role":"admin"}' >/dev/null
token=$(post /tokens '{"name":"schemathesis","user_id":2}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
cd "$WORK" # schemathesis keeps its example database in the working directory
"$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run http://127.0.0.1:18080/openapi.json \
  --checks status_code_conformance,response_schema_conformance \
  -H "Authorization: Bearer $token" --max-examples 10 --workers 4 --request-timeout 65 "$@"
rc=$?
kill "$pid"; wait "$pid"
if grep -q ' ERROR ' "$WORK/service.log"; then
  echo "the service logged errors:" >&2; grep ' ERROR ' "$WORK/service.log" >&2; rc=1
fi
exit $rc
INSIDE
chmod +x "$work/inside.sh"
REPO=$repo WORK=$work VENV=$venv unshare -n "$work/inside.sh" "$@"
