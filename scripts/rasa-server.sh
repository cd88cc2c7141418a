#!/usr/bin/env bash
# The Rasa 3.6 NLU server behind YIMEN_NLU_BACKEND=rasa, in a venv of its own (Python 3.10).
#
#   scripts/rasa-server.sh install              build the venv (skipped when up to date)
#   scripts/rasa-server.sh train [--epochs N]   train on nlu/data (skipped when a model of the
#                                               same data, config and epochs exists)
#   scripts/rasa-server.sh serve [--port P]     run the server in the foreground
#   scripts/rasa-server.sh start [--port P]     run it in the background, wait until it answers
#   scripts/rasa-server.sh stop [--port P]      stop the background server
#   scripts/rasa-server.sh all [--epochs N] [--port P]   install + train + start, timed
#   scripts/rasa-server.sh stock [--epochs N] [--port P]
#                             the same for a stock Rasa assistant (nlu/rasa/stock/: rules,
#                             Rasa's REST channel; default port 5006), to measure beside
#                             Yimen; train, serve and start take --stock for it too
#
# Environment: RASA_PYTHON (a Python 3.10), RASA_VENV (default .rasa-venv), RASA_HOME
# (default .rasa: assembled projects, training cache, pid and log files), RASA_MODELS (default
# $RASA_HOME/models), RASA_MODEL (serve this file instead of the last trained model),
# RASA_TOKEN (token auth), RASA_PORT (default 5005), RASA_START_TIMEOUT (s, default 180).
# The server listens on 127.0.0.1 only and never phones home.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RASA_PYTHON=${RASA_PYTHON:-/root/.pyenv/versions/3.10.13/bin/python}
RASA_VENV=${RASA_VENV:-$ROOT/.rasa-venv}
RASA_HOME=${RASA_HOME:-$ROOT/.rasa}
RASA_MODELS=${RASA_MODELS:-$RASA_HOME/models}
RASA_PORT=${RASA_PORT:-5005}
RASA_START_TIMEOUT=${RASA_START_TIMEOUT:-180}
RASA_VERSION=3.6.21
HOST=127.0.0.1
# jieba and other sdists build with setuptools' pkg_resources (gone from setuptools >= 81).
BUILD_TOOLS=(setuptools==70.3.0 wheel==0.45.1)
REQUIREMENTS=$ROOT/nlu/rasa/requirements.txt
KEEP_MODELS=3

# No telemetry, no update checks, no hub downloads: only PyPI is reachable here.
export RASA_TELEMETRY_ENABLED=false
export RASA_CACHE_DIRECTORY=$RASA_HOME/cache
export TF_CPP_MIN_LOG_LEVEL=2
export SQLALCHEMY_SILENCE_UBER_WARNING=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
export MPLCONFIGDIR=$RASA_HOME/matplotlib

log() { echo "rasa-server: $*" >&2; }
die() { log "$*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

install_marker() {
  cat "$REQUIREMENTS" "$ROOT/nlu/rasa/constraints.txt" | { cat; echo "${BUILD_TOOLS[*]}"; } \
    | sha256sum | cut -c1-16
}

cmd_install() {
  local marker=$RASA_VENV/.yimen-installed want
  want=$(install_marker)
  if [ -x "$RASA_VENV/bin/rasa" ] && [ "$(cat "$marker" 2>/dev/null)" = "$want" ]; then
    log "venv $RASA_VENV is up to date"
    return 0
  fi
  [ -x "$RASA_PYTHON" ] || die "no Python 3.10 at $RASA_PYTHON (set RASA_PYTHON)"
  "$RASA_PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' \
    || die "$RASA_PYTHON is not Python 3.10; Rasa $RASA_VERSION needs 3.10"
  [ -x "$RASA_VENV/bin/python" ] || "$RASA_PYTHON" -m venv "$RASA_VENV"
  "$RASA_VENV/bin/pip" install -q "${BUILD_TOOLS[@]}"
  "$RASA_VENV/bin/pip" install -q -r "$REQUIREMENTS"
  "$RASA_VENV/bin/python" -c "import rasa, jieba; assert rasa.__version__ == '$RASA_VERSION'"
  echo "$want" > "$marker"
  log "installed rasa==$RASA_VERSION in $RASA_VENV"
}

require_venv() {
  [ -x "$RASA_VENV/bin/rasa" ] || die "no Rasa venv at $RASA_VENV: run '$0 install' first"
}

# The stock assistant (--stock): its files, model name prefix and latest-model pointer.
STOCK_DIR=$ROOT/nlu/rasa/stock
STOCK=""
kind() { if [ -n "$STOCK" ]; then echo stock; else echo nlu; fi; }
latest_file() { if [ -n "$STOCK" ]; then echo "$RASA_MODELS/latest-stock"; else echo "$RASA_MODELS/latest"; fi; }

cmd_train() {
  local epochs=100 force=""
  while [ $# -gt 0 ]; do
    case $1 in
      --epochs) epochs=${2:?--epochs needs a number}; shift 2 ;;
      --force) force=1; shift ;;
      --stock) STOCK=1; shift ;;
      *) die "train: unknown argument $1" ;;
    esac
  done
  require_venv
  local projects=$RASA_HOME/projects hash name project assistant=() train=(train nlu --nlu data)
  if [ -n "$STOCK" ]; then
    assistant=(--assistant "$STOCK_DIR")
    train=(train --data data --domain domain.yml)
  fi
  mkdir -p "$projects" "$RASA_MODELS"
  hash=$("$RASA_VENV/bin/python" "$ROOT/nlu/rasa/assembly.py" --data "$ROOT/nlu/data" \
    --config "$ROOT/nlu/rasa/config.yml" --epochs "$epochs" --salt "rasa==$RASA_VERSION" \
    --out "$projects" "${assistant[@]}")
  name=$(kind)-$hash project=$projects/$hash
  touch "$project"  # newest first when old projects are pruned below
  # One training of a model at a time: a second caller (the test suite's server and a test
  # of this script, on a new machine) waits, then finds the model trained.
  local lock
  exec {lock}>"$RASA_MODELS/.train-$name.lock"
  flock "$lock"
  if [ -f "$RASA_MODELS/$name.tar.gz" ] && [ -z "$force" ]; then
    log "model $name.tar.gz is up to date ($epochs epochs)"
  else
    log "training $name ($epochs DIET epochs)"
    # From inside the project: the rendered config names the jieba dictionary relatively.
    (cd "$project" && "$RASA_VENV/bin/rasa" "${train[@]}" --config config.yml \
      --out "$RASA_MODELS" --fixed-model-name "$name")
    [ -f "$RASA_MODELS/$name.tar.gz" ] || die "rasa train wrote no $RASA_MODELS/$name.tar.gz"
  fi
  exec {lock}>&-
  echo "$RASA_MODELS/$name.tar.gz" > "$(latest_file)"
  # Older models and projects go, except the newest few (a retrain at other epochs may come
  # back to them).
  ls -1t "$RASA_MODELS/$(kind)"-*.tar.gz | tail -n +$((KEEP_MODELS + 1)) | xargs -r rm -f
  find "$RASA_MODELS" -maxdepth 1 -name '.train-*.lock' -mmin +1440 -delete
  ls -1td "$projects"/*/ | tail -n +$((KEEP_MODELS + 1)) | xargs -r rm -rf
  echo "$RASA_MODELS/$name.tar.gz"
}

current_model() {
  local model=${RASA_MODEL:-}
  if [ -z "$model" ] && [ -f "$(latest_file)" ]; then model=$(cat "$(latest_file)"); fi
  if [ -z "$model" ] || [ ! -f "$model" ]; then die "no trained model: run '$0 train' first"; fi
  echo "$model"
}

parse_port() {
  while [ $# -gt 0 ]; do
    case $1 in
      --port) RASA_PORT=${2:?--port needs a number}; shift 2 ;;
      --stock) STOCK=1; shift ;;
      *) die "unknown argument $1" ;;
    esac
  done
}

rasa_run_args() {
  local model=$1
  RUN_ARGS=(run --enable-api --model "$model" --interface "$HOST" --port "$RASA_PORT")
  if [ -n "${RASA_TOKEN:-}" ]; then RUN_ARGS+=(--auth-token "$RASA_TOKEN"); fi
  if [ -n "$STOCK" ]; then RUN_ARGS+=(--credentials "$STOCK_DIR/credentials.yml"); fi
}

cmd_serve() {
  parse_port "$@"
  require_venv
  rasa_run_args "$(current_model)"
  exec "$RASA_VENV/bin/rasa" "${RUN_ARGS[@]}"
}

pid_file() { echo "$RASA_HOME/server-$RASA_PORT.pid"; }

running_pid() {
  local pid
  pid=$(cat "$(pid_file)" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

answers() { curl -fsS -o /dev/null --max-time 2 "http://$HOST:$RASA_PORT/"; }

cmd_start() {
  parse_port "$@"
  require_venv
  local model pid logfile=$RASA_HOME/server-$RASA_PORT.log started
  model=$(current_model)
  # What the running server was started with: its model and (a hash of) its token.
  serving="$model $(printf %s "${RASA_TOKEN:-}" | sha256sum | cut -c1-16)"
  if pid=$(running_pid); then
    if [ "$(cat "$(pid_file).model" 2>/dev/null)" = "$serving" ]; then
      log "already running (pid $pid) with $(basename "$model")"
      return 0
    fi
    log "restarting pid $pid with $(basename "$model") and the current token"
    cmd_stop --port "$RASA_PORT"
  fi
  answers 2>/dev/null && die "something else answers on $HOST:$RASA_PORT"
  mkdir -p "$RASA_HOME"
  rasa_run_args "$model"
  started=$(now)
  # setsid: the server outlives the shell that started it (CI steps, terminals).
  setsid "$RASA_VENV/bin/rasa" "${RUN_ARGS[@]}" > "$logfile" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$(pid_file)"
  echo "$serving" > "$(pid_file).model"
  for _ in $(seq 1 "$RASA_START_TIMEOUT"); do
    if answers 2>/dev/null; then
      log "serving $(basename "$model") on http://$HOST:$RASA_PORT (pid $pid, log $logfile)," \
        "up in $(elapsed "$started") s"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$logfile" >&2; die "server exited during start"; }
    sleep 1
  done
  tail -n 30 "$logfile" >&2
  kill "$pid" 2>/dev/null || true
  die "server did not answer within $RASA_START_TIMEOUT s"
}

cmd_stop() {
  parse_port "$@"
  local pid
  if ! pid=$(running_pid); then
    rm -f "$(pid_file)" "$(pid_file).model"
    log "not running on port $RASA_PORT"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -f "$(pid_file)" "$(pid_file).model"
  log "stopped pid $pid"
}

cmd_all() {
  local train_args=() port_args=() t
  while [ $# -gt 0 ]; do
    case $1 in
      --epochs) train_args+=(--epochs "${2:?--epochs needs a number}"); shift 2 ;;
      --port) port_args+=(--port "${2:?--port needs a number}"); shift 2 ;;
      *) die "all: unknown argument $1" ;;
    esac
  done
  t=$(now); cmd_install; log "install: $(elapsed "$t") s"
  t=$(now); cmd_train "${train_args[@]}" > /dev/null; log "train: $(elapsed "$t") s"
  t=$(now); cmd_start "${port_args[@]}"; log "start: $(elapsed "$t") s"
}

cmd_stock() {
  local train_args=(--stock) port=5006 t
  while [ $# -gt 0 ]; do
    case $1 in
      --epochs) train_args+=(--epochs "${2:?--epochs needs a number}"); shift 2 ;;
      --port) port=${2:?--port needs a number}; shift 2 ;;
      *) die "stock: unknown argument $1" ;;
    esac
  done
  t=$(now); cmd_install; log "install: $(elapsed "$t") s"
  t=$(now); cmd_train "${train_args[@]}" > /dev/null; log "train: $(elapsed "$t") s"
  t=$(now); cmd_start --port "$port" --stock; log "start: $(elapsed "$t") s"
  log "REST channel: POST http://$HOST:$port/webhooks/rest/webhook"
}

case ${1:-} in
  install | train | serve | start | stop | all | stock) command=$1; shift; "cmd_$command" "$@" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
