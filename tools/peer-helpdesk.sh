#!/usr/bin/env bash
# peer-helpdesk.sh - install, start and stop django-helpdesk as a *peer system*
# so that our load tool can measure its ticket-creation rate beside gridcall's.
#
# Interface
#   tools/peer-helpdesk.sh start --dir DIR --port PORT --db sqlite|postgres \
#                                [--pg-url postgres://postgres@127.0.0.1:5432/DBNAME]
#       Builds a throwaway virtualenv + Django project under DIR (DIR must be
#       outside this repository), migrates a fresh database, creates a staff
#       superuser, a DRF token for it and one Queue, starts gunicorn (2 sync
#       workers) on 127.0.0.1:PORT in the background (pid: DIR/gunicorn.pid,
#       log: DIR/gunicorn.log), waits until the API answers, then prints exactly
#       three lines on stdout (everything else goes to stderr):
#           HELPDESK_URL=http://127.0.0.1:PORT
#           HELPDESK_TOKEN=<token>
#           HELPDESK_QUEUE=<queue id>
#       Re-running start on the same DIR stops the previous server first and
#       starts from an empty database; the virtualenv is reused when its pins
#       match (DIR/venv/.pins), so a re-run skips the ~10 s pip install.
#   tools/peer-helpdesk.sh stop --dir DIR [--pg-url ...]
#       Stops gunicorn, drops the PostgreSQL database (the one given, else the
#       one recorded by start in DIR/peer.env) and removes DIR. Stopping a DIR
#       that does not exist is not an error.
#   Environment:
#       PEER_CPUS    optional taskset CPU list, e.g. PEER_CPUS=1 runs gunicorn
#                    (master and both workers) under `taskset -c 1`.
#       PEER_PYTHON  interpreter for the virtualenv (default python3.11, else
#                    python3; django-helpdesk 2.6 needs Python >= 3.10).
#
# Load request:
#   POST $HELPDESK_URL/api/tickets/          <- trailing slash is mandatory
#   Authorization: Token $HELPDESK_TOKEN
#   Content-Type: application/json
#   {"queue": <id>, "title": "...", "description": "...", "priority": 3,
#    "submitter_email": "a@example.com"}
#   -> 201, JSON body whose "id" is the new ticket's id.
#   queue, title, description and priority are all required in practice:
#   no priority -> 400 {"priority":["This field is required."]};
#   no description -> 500 (KeyError in helpdesk's TicketSerializer.create).
#   Without the trailing slash Django answers 301 (APPEND_SLASH), not 201.
#   Do not mix GETs into the load: GET /api/tickets/ and /api/tickets/<id>/
#   walk every ticket (set_custom_field_values) and slow down as rows grow.
#
# Measured here (2 cores, wrk -t2 -c8 -d10s on the same machine, idle box):
#   unpinned:     SQLite ~105-118/s, PostgreSQL 15 ~81-88/s
#   PEER_CPUS=1:  SQLite ~59/s,      PostgreSQL 15 ~54/s
#   start from scratch ~14-18 s (pip ~10-12 s, migrate ~3-5 s); with the
#   virtualenv reused ~6-8 s; stop ~3 s.
#
# Pinned versions (all resolve from PyPI on CPython 3.11):
#   django-helpdesk==2.6.1  newest 2.x; the figures in our tooling notes are 2.6
#   Django==5.2.19          helpdesk 2.6 requires Django >= 5.2
#   djangorestframework==3.18.3  helpdesk's API is DRF (it depends on it anyway)
#   gunicorn==27.0.1        WSGI server, default sync workers
#   psycopg2-binary==2.9.13 PostgreSQL driver (installed only for --db postgres)
#   Other transitive dependencies are whatever pip resolves for those pins.
#
# Why each setting in the generated settings module is there:
#   DEBUG=False                 measure production behaviour (DEBUG keeps every
#                               SQL query in memory and renders debug pages).
#   ALLOWED_HOSTS               required once DEBUG is off; loopback names only.
#   INSTALLED_APPS              admin/auth/contenttypes/sessions/messages/
#                               staticfiles: helpdesk's models, admin and
#                               templates use them; sites: helpdesk builds
#                               e-mail links from Site (SITE_ID=1); humanize:
#                               its templates load it; rest_framework(.authtoken):
#                               its /api/ and our token auth.
#   HELPDESK_TEAMS_MODE_ENABLED=False  the default (True) needs pinax-teams and
#                               a migration dependency on it; we do not use teams.
#   EMAIL_BACKEND dummy         ticket creation e-mails the submitter; dummy
#                               discards it so no SMTP server is needed and no
#                               mail cost is measured (matches "dummy mail").
#   REST_FRAMEWORK auth         TokenAuthentication only: no session, so no
#                               CSRF check applies to API calls.
#   DB (postgres)               CONN_MAX_AGE=60: each gunicorn worker keeps its
#                               connection instead of reconnecting per request,
#                               as any production deployment would (measured,
#                               PEER_CPUS=1: 54/s with it, 36/s with Django's
#                               default 0).
#   DB (sqlite)                 transaction_mode IMMEDIATE + 20 s timeout: the
#                               two workers write concurrently; a writer waits
#                               for the lock instead of failing with "database
#                               is locked". WAL + synchronous=NORMAL: the usual
#                               web-server SQLite setup, fewer fsyncs (measured,
#                               PEER_CPUS=1: 59/s with it, 45/s with the default
#                               rollback journal).
#   LOGGING                     django.request errors (500s) go to gunicorn.log.
#   Access log is off: per-request logging would be measured too.
#   gunicorn --no-control-socket: gunicorn 27 otherwise opens one shared
#                               socket at ~/.gunicorn/gunicorn.ctl, which two
#                               peers (sqlite + postgres) would fight over.
set -Eeuo pipefail

PROG=peer-helpdesk
HELPDESK_VERSION=2.6.1
PINS=(
  "django-helpdesk==${HELPDESK_VERSION}"
  "Django==5.2.19"
  "djangorestframework==3.18.3"
  "gunicorn==27.0.1"
)
PG_PIN="psycopg2-binary==2.9.13"
WORKERS=2
MARKER=.peer-helpdesk
READY_TIMEOUT=60

# Keep the caller's stdout for the three result lines only; everything else,
# ours and every tool's, goes to stderr.
exec 3>&1 1>&2

log() { echo "$PROG: $*" >&2; }
die() { echo "$PROG: ERROR: $*" >&2; exit 1; }
on_err() { echo "$PROG: ERROR: command failed (exit $1) at line $2: $3" >&2; exit "$1"; }
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

usage() {
  cat >&2 <<'EOF'
usage: peer-helpdesk.sh start --dir DIR --port PORT --db sqlite|postgres [--pg-url postgres://USER@HOST:PORT/DBNAME]
       peer-helpdesk.sh stop  --dir DIR [--pg-url postgres://USER@HOST:PORT/DBNAME]
EOF
  exit 2
}

# ---------------------------------------------------------------- arguments
[[ $# -ge 1 ]] || usage
CMD=$1; shift
DIR="" PORT="" DB="" PG_URL=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --dir|--port|--db|--pg-url)
      [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"
      case $1 in
        --dir) DIR=$2 ;; --port) PORT=$2 ;; --db) DB=$2 ;; --pg-url) PG_URL=$2 ;;
      esac
      shift 2 ;;
    --dir=*) DIR=${1#*=}; shift ;;
    --port=*) PORT=${1#*=}; shift ;;
    --db=*) DB=${1#*=}; shift ;;
    --pg-url=*) PG_URL=${1#*=}; shift ;;
    -h|--help) usage ;;
    *) die "unknown argument: $1" ;;
  esac
done
[[ $CMD == start || $CMD == stop ]] || { log "unknown command: $CMD"; usage; }
[[ -n $DIR ]] || die "--dir is required"

# Absolute DIR, never inside this repository, never something precious.
DIR=$(realpath -m -- "$DIR")
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel 2>/dev/null || realpath -m "$SCRIPT_DIR/..")
case $DIR/ in
  "$REPO_ROOT"/*) die "--dir $DIR is inside the repository ($REPO_ROOT); use a directory outside it, e.g. /tmp/peer-helpdesk" ;;
esac
depth=$(tr -cd / <<<"$DIR" | wc -c)
if (( depth < 2 )) || [[ $DIR == "$(realpath -m -- "${HOME:-/}")" ]]; then
  die "refusing to use $DIR as --dir (stop removes it); use a dedicated directory such as /tmp/peer-helpdesk"
fi

# Parse postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME into PG_* variables.
parse_pg_url() {
  local re='^postgres(ql)?://([^:@/]+)(:([^@/]*))?@([^:/]+)(:([0-9]+))?/([A-Za-z_][A-Za-z0-9_]*)$'
  [[ $1 =~ $re ]] || die "bad --pg-url '$1' (expected postgres://USER@HOST:PORT/DBNAME, DBNAME of letters, digits, _)"
  PG_USER=${BASH_REMATCH[2]} PG_PASS=${BASH_REMATCH[4]} PG_HOST=${BASH_REMATCH[5]}
  PG_PORT=${BASH_REMATCH[7]:-5432} PG_DB=${BASH_REMATCH[8]}
  case $PG_DB in
    postgres|template0|template1) die "refusing to drop/create database '$PG_DB'; name a throwaway database" ;;
  esac
}

# psql against the maintenance database of the server named by $1.
pg_admin() {
  local url=$1; shift
  command -v psql >/dev/null || die "psql not found (apt-get install -y postgresql-client)"
  parse_pg_url "$url"
  PGPASSWORD=$PG_PASS PGCONNECT_TIMEOUT=5 PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 \
    -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"
}

pg_drop() {
  parse_pg_url "$1"   # sets PG_DB before it is used in the SQL below
  pg_admin "$1" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" \
    || die "could not drop database from $1 (is PostgreSQL up at that address?)"
  log "dropped database $PG_DB (if it existed)"
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# Stop the gunicorn recorded in DIR/gunicorn.pid, if it is still ours.
stop_server() {
  local pidfile=$DIR/gunicorn.pid pid
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" \
     && grep -qaF -e "$DIR/venv/bin/" -e "gunicorn: master" "/proc/$pid/cmdline" 2>/dev/null; then
    log "stopping gunicorn (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do pid_alive "$pid" || break; sleep 0.2; done
    if pid_alive "$pid"; then
      log "gunicorn $pid did not stop within 20 s; killing its process group"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f -- "$pidfile"
}

# --------------------------------------------------------------------- stop
if [[ $CMD == stop ]]; then
  [[ -z $PORT && -z $DB ]] || log "note: --port/--db are ignored by stop"
  if [[ -e $DIR ]]; then
    [[ -f $DIR/$MARKER ]] || die "$DIR was not made by this script (no $MARKER); not touching it"
    stop_server
    if [[ -z $PG_URL && -f $DIR/peer.env ]]; then
      PG_URL=$(sed -n 's/^PEER_PG_URL=//p' "$DIR/peer.env")
    fi
  else
    log "$DIR does not exist; nothing to stop there"
  fi
  [[ -z $PG_URL ]] || pg_drop "$PG_URL"
  if [[ -e $DIR ]]; then
    rm -rf -- "$DIR"
    [[ ! -e $DIR ]] || die "could not remove $DIR"
    log "removed $DIR"
  fi
  exit 0
fi

# -------------------------------------------------------------------- start
if ! [[ $PORT =~ ^[0-9]+$ ]] || (( 10#$PORT < 1 || 10#$PORT > 65535 )); then
  die "--port must be a TCP port number 1-65535 (got '${PORT}')"
fi
case $DB in
  sqlite) [[ -z $PG_URL ]] || die "--pg-url is only for --db postgres" ;;
  postgres) [[ -n $PG_URL ]] || die "--db postgres needs --pg-url postgres://postgres@127.0.0.1:5432/DBNAME"
            parse_pg_url "$PG_URL" ;;
  *) die "--db must be sqlite or postgres (got '${DB}')" ;;
esac
command -v curl >/dev/null || die "curl not found"
TASKSET=()
if [[ -n ${PEER_CPUS:-} ]]; then
  command -v taskset >/dev/null || die "PEER_CPUS is set but taskset is not installed (util-linux)"
  taskset -c "$PEER_CPUS" true 2>/dev/null || die "PEER_CPUS='$PEER_CPUS' is not a usable CPU list for taskset -c"
  TASKSET=(taskset -c "$PEER_CPUS")
fi

T0=$SECONDS

# Previous run in the same DIR: stop it and drop the database it recorded.
if [[ -e $DIR ]]; then
  if [[ -f $DIR/$MARKER ]]; then
    stop_server
    old_pg=$(sed -n 's/^PEER_PG_URL=//p' "$DIR/peer.env" 2>/dev/null || true)
    [[ -z $old_pg || $old_pg == "$PG_URL" ]] || pg_drop "$old_pg"
    rm -rf -- "$DIR/project" "$DIR/peer.env" "$DIR/gunicorn.log"
  elif [[ -n $(ls -A -- "$DIR") ]]; then
    die "$DIR exists, is not empty and was not made by this script; pick another --dir"
  fi
fi

if (exec 9<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "something already listens on 127.0.0.1:$PORT; pick another --port"
fi

if [[ $DB == postgres ]]; then   # fail before the slow pip install
  pg_admin "$PG_URL" -Atc 'SELECT 1' >/dev/null \
    || die "cannot reach PostgreSQL for $PG_URL (is it up, with trust/password auth for $PG_USER?)"
fi

mkdir -p -- "$DIR"
touch -- "$DIR/$MARKER"

# ---- virtualenv
PY=${PEER_PYTHON:-}
if [[ -z $PY ]]; then
  if command -v python3.11 >/dev/null; then PY=python3.11; else PY=python3; fi
fi
command -v "$PY" >/dev/null || die "python interpreter '$PY' not found (set PEER_PYTHON)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$PY is $("$PY" -V 2>&1); django-helpdesk $HELPDESK_VERSION needs Python >= 3.10"

want_pins="${PINS[*]}"
[[ $DB == postgres ]] && want_pins+=" $PG_PIN"
VENV=$DIR/venv
if [[ -x $VENV/bin/python && -f $VENV/.pins ]] && grep -qxF -- "$want_pins" "$VENV/.pins"; then
  log "reusing virtualenv $VENV ($want_pins)"
else
  t=$SECONDS
  log "creating virtualenv $VENV with $("$PY" -V 2>&1)"
  rm -rf -- "$VENV"
  "$PY" -m venv "$VENV" || die "python -m venv failed (Debian: apt-get install -y python3-venv)"
  log "pip install $want_pins"
  # shellcheck disable=SC2086
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$VENV/bin/pip" install -q $want_pins \
    || die "pip install failed (is PyPI reachable?)"
  echo "$want_pins" >"$VENV/.pins"
  log "virtualenv ready in $((SECONDS - t)) s"
fi

# ---- Django project
PROJ=$DIR/project
mkdir -p -- "$PROJ/peerdesk"
SECRET=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))')

if [[ $DB == postgres ]]; then
  DB_SETTINGS=$(cat <<EOF
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "$PG_DB",
        "USER": "$PG_USER",
        "PASSWORD": "$PG_PASS",
        "HOST": "$PG_HOST",
        "PORT": "$PG_PORT",
        # keep one connection per worker instead of reconnecting per request
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}
EOF
)
else
  DB_SETTINGS=$(cat <<'EOF'
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        "OPTIONS": {
            # two gunicorn workers write at once: take the write lock up front
            # and wait for it instead of failing with "database is locked"
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
EOF
)
fi

cat >"$PROJ/peerdesk/__init__.py" </dev/null
cat >"$PROJ/peerdesk/settings.py" <<EOF
# Generated by tools/peer-helpdesk.sh (gridcall) - throwaway peer system.
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "$SECRET"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "helpdesk",
]
SITE_ID = 1

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "peerdesk.urls"
WSGI_APPLICATION = "peerdesk.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

$DB_SETTINGS
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static"
MEDIA_ROOT = BASE_DIR / "media"
LOGIN_URL = "/login/"

EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
DEFAULT_FROM_EMAIL = "helpdesk@localhost"
SERVER_EMAIL = "helpdesk@localhost"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
    ],
}

HELPDESK_TEAMS_MODE_ENABLED = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR"},
    },
}
EOF

cat >"$PROJ/peerdesk/urls.py" <<'EOF'
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("helpdesk.urls", namespace="helpdesk")),
]
EOF

cat >"$PROJ/peerdesk/wsgi.py" <<'EOF'
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerdesk.settings")
application = get_wsgi_application()
EOF

cat >"$PROJ/manage.py" <<'EOF'
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerdesk.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
EOF

# Prints "<token> <queue id>" on stdout, nothing else.
cat >"$PROJ/bootstrap.py" <<'EOF'
import os
import secrets
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerdesk.settings")
import django

django.setup()
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from helpdesk.models import Queue

User = get_user_model()
user = User.objects.create_superuser(
    "loadstaff", "loadstaff@example.com", secrets.token_urlsafe(16)
)
assert user.is_staff and user.is_superuser
token, _ = Token.objects.get_or_create(user=user)
queue = Queue.objects.create(
    title="Peer load queue", slug="peerload", allow_public_submission=False,
    allow_email_submission=False,
)
sys.stdout.write(f"{token.key} {queue.id}\n")
EOF

# ---- database
if [[ $DB == postgres ]]; then
  pg_drop "$PG_URL"
  pg_admin "$PG_URL" -c "CREATE DATABASE \"$PG_DB\"" || die "could not create database $PG_DB"
  log "created database $PG_DB on $PG_HOST:$PG_PORT"
else
  rm -f -- "$PROJ"/db.sqlite3*
fi

t=$SECONDS
log "migrating ($DB)"
(cd "$PROJ" && "$VENV/bin/python" manage.py migrate --noinput -v 0) || die "migrate failed"
log "migrated in $((SECONDS - t)) s"

read -r TOKEN QUEUE_ID < <(cd "$PROJ" && "$VENV/bin/python" bootstrap.py) || true
[[ ${TOKEN:-} =~ ^[0-9a-f]{40}$ && ${QUEUE_ID:-} =~ ^[0-9]+$ ]] \
  || die "bootstrap (staff user, token, queue) failed"

# ---- gunicorn
{
  echo "PEER_DB=$DB"
  echo "PEER_PORT=$PORT"
  echo "PEER_PG_URL=$PG_URL"
  echo "HELPDESK_URL=http://127.0.0.1:$PORT"
  echo "HELPDESK_TOKEN=$TOKEN"
  echo "HELPDESK_QUEUE=$QUEUE_ID"
} >"$DIR/peer.env"

log "starting gunicorn ($WORKERS workers) on 127.0.0.1:$PORT${PEER_CPUS:+ pinned to CPUs $PEER_CPUS}; log $DIR/gunicorn.log"
# setsid: own session/process group, so the server outlives this script and
# the caller's terminal signals; stdout/stderr to the log and fd 3 closed so a
# caller reading our stdout through a pipe is not held open by the server.
setsid "${TASKSET[@]}" "$VENV/bin/gunicorn" peerdesk.wsgi:application \
  --chdir "$PROJ" --workers "$WORKERS" --bind "127.0.0.1:$PORT" \
  --pid "$DIR/gunicorn.pid" --no-control-socket \
  --error-logfile - --log-level info \
  </dev/null >>"$DIR/gunicorn.log" 2>&1 3>&- &
LAUNCH_PID=$!
echo "$LAUNCH_PID" >"$DIR/gunicorn.pid"

URL=http://127.0.0.1:$PORT
ready=""
for _ in $(seq 1 $((READY_TIMEOUT * 4))); do
  if ! pid_alive "$LAUNCH_PID"; then
    tail -n 40 "$DIR/gunicorn.log" >&2 || true
    die "gunicorn exited during start-up (log above, full log $DIR/gunicorn.log)"
  fi
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
         -H "Authorization: Token $TOKEN" "$URL/api/tickets/" || true)
  if [[ $code == 200 ]]; then ready=1; break; fi
  sleep 0.25
done
if [[ -z $ready ]]; then
  tail -n 40 "$DIR/gunicorn.log" >&2 || true
  stop_server
  die "gunicorn did not answer GET $URL/api/tickets/ with 200 within ${READY_TIMEOUT} s (last status ${code:-none})"
fi
log "ready in $((SECONDS - T0)) s total"

printf 'HELPDESK_URL=%s\nHELPDESK_TOKEN=%s\nHELPDESK_QUEUE=%s\n' "$URL" "$TOKEN" "$QUEUE_ID" >&3
