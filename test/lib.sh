# test/lib.sh -- shell functions shared by test/run.sh, test/demo.sh,
# the integration tests and the benchmarks.
#
# Source it from bash; it defines only functions and a few variables, all
# prefixed oc_ / OC_.  Nothing here talks to anything but this machine:
# clusters listen on a Unix socket in a private directory only.

OC_ROOT=${OC_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
OC_PGBIN=${OC_PGBIN:-/usr/lib/postgresql/15/bin}
OC_PG_CONFIG=${OC_PG_CONFIG:-$OC_PGBIN/pg_config}
# The read-only reference material (real Odoo dump, marketplace specs) sits
# beside the checkout in CI and on developer machines.
OC_SHARED=${OC_SHARED:-$(cd "$OC_ROOT/.." && pwd)/shared}
export OC_ROOT OC_PGBIN OC_PG_CONFIG OC_SHARED

# oc_log MESSAGE...: progress message on stderr
oc_log() {
	printf '==> %s\n' "$*" >&2
}

# oc_die MESSAGE...: error message on stderr, exit 2
oc_die() {
	printf 'error: %s\n' "$*" >&2
	exit 2
}

# oc_install_packages: install the Debian packages listed in
# test/debian-packages.txt that are missing (apt-get update first).
oc_install_packages() {
	local pkgs missing=()
	pkgs=$(grep -v '^[[:space:]]*#' "$OC_ROOT/test/debian-packages.txt" | xargs)
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || oc_die "missing Debian packages: ${missing[*]} (run as root to install them)"
	oc_log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || oc_die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		oc_die "apt-get install failed for: ${missing[*]}"
}

# oc_build_install: build the extension (warnings are errors) and install it
# into the PostgreSQL 15 server directories.
oc_build_install() {
	oc_log "building and installing omnichan"
	make -C "$OC_ROOT" -s PG_CONFIG="$OC_PG_CONFIG" >/dev/null || return 1
	if [ "$(id -u)" -eq 0 ] || [ -w "$($OC_PG_CONFIG --pkglibdir)" ]; then
		make -C "$OC_ROOT" -s PG_CONFIG="$OC_PG_CONFIG" install >/dev/null || return 1
	else
		sudo make -C "$OC_ROOT" -s PG_CONFIG="$OC_PG_CONFIG" install >/dev/null || return 1
	fi
}

# oc_as_pg CMD...: run a server-side command as the cluster owner.  As root
# that is the "postgres" user (initdb refuses root); otherwise ourselves.
oc_as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# oc_cluster_start DIR [CONF_LINE...]: create and start a throwaway cluster
# in DIR (created if needed) listening only on a Unix socket in DIR.  Each
# CONF_LINE is appended to postgresql.conf.  Exports PGHOST, PGPORT, PGUSER
# and OC_CLUSTER_DIR for the callers.
oc_cluster_start() {
	local dir=$1
	shift
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
	oc_as_pg "$OC_PGBIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync \
		-E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; return 1; }
	{
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		echo "port = 5432"
		echo "fsync = off"
		echo "full_page_writes = off"
		echo "max_connections = 60"
		echo "log_line_prefix = '%m [%p] %q%a '"
		for line in "$@"; do
			echo "$line"
		done
	} >>"$dir/data/postgresql.conf"
	# (fd 9, the test lock of test/run.sh and the benchmarks, is not passed
	# on: a postmaster holding it would block every later run until it stops)
	oc_as_pg "$OC_PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 9>&- ||
		{ tail -n 40 "$dir/server.log" >&2; return 1; }
	export PGHOST=$dir PGPORT=5432 PGUSER=postgres OC_CLUSTER_DIR=$dir
	unset PGDATABASE PGPASSWORD PGSERVICE
}

# oc_cluster_stop DIR: stop the cluster in DIR (fast shutdown), if running.
oc_cluster_stop() {
	local dir=$1
	[ -f "$dir/data/postmaster.pid" ] || return 0
	oc_as_pg "$OC_PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
		oc_as_pg "$OC_PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
}

# oc_psql DB [psql args...]: psql that stops on the first error, quietly.
oc_psql() {
	local db=$1
	shift
	"$OC_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"
}

# oc_create_fixture_db DB: a database holding the project's Odoo 17 fixture
# and the catalog generator (schema omnichan_test), no extension installed.
oc_create_fixture_db() {
	local db=$1
	"$OC_PGBIN/createdb" "$db" || return 1
	oc_psql "$db" -f "$OC_ROOT/test/fixtures/odoo17.sql" >/dev/null || return 1
	oc_psql "$db" -f "$OC_ROOT/test/fixtures/catalog.sql" >/dev/null || return 1
}

# oc_create_real_db DB: a database restored from the real Odoo 17 demo dump
# in $OC_SHARED/odoo/demo.sql.gz, plus the catalog generator.  Returns 3
# when the dump is not available on this machine.
oc_create_real_db() {
	local db=$1 dump="$OC_SHARED/odoo/demo.sql.gz"
	[ -r "$dump" ] || return 3
	"$OC_PGBIN/createdb" "$db" || return 1
	gunzip -c "$dump" | oc_psql "$db" >/dev/null || return 1
	oc_psql "$db" -f "$OC_ROOT/test/fixtures/catalog.sql" >/dev/null || return 1
}
