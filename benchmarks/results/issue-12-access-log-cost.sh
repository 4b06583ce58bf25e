#!/usr/bin/env bash
# Access-log cost as users get it: manage.py serve before issue 12 (48b80d4, stdlib text
# line) and after (structlog text and JSON), wrk on /healthz (native) and /auth/login (Flask).
set -u
run() { # name dir extra-env...
  local name=$1 dir=$2; shift 2
  local port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local db=$(mktemp -d)/b.db
  (cd $dir && env -i PATH=/usr/bin:/bin HOME=/root APP_ENV=development AUTORELOAD=false DEBUG=false DATABASE_URL=sqlite:///$db PORT=$port "$@" taskset -c 0 .venv/bin/python manage.py serve >/dev/null 2>&1) &
  local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
  for path in /healthz /auth/login; do
    timeout 10 taskset -c 1 wrk -t1 -c16 -d1s http://127.0.0.1:$port$path >/dev/null
    for r in 1 2 3; do
      rps=$(timeout 20 taskset -c 1 wrk -t1 -c16 -d4s http://127.0.0.1:$port$path | awk '/Requests\/sec/ {print $2}')
      echo "$name $path round$r $rps"
    done
  done
  pkill -TERM -P $pid 2>/dev/null; kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
  sleep 1
}
run before /work/wt-before
run after-text /work/main LOG_FORMAT=text
run after-json /work/main LOG_FORMAT=json
