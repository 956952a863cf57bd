# Sourced by bench/serve_*.sh: builds what they run and waits for a server.
# Sets root (the repository), tmp (removed on exit, with any server the
# caller started: pids), bin (residual, built unless $1 names one) and
# serveload.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]:-}"; do kill -TERM "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
bin=${1:-}
if [[ -z $bin ]]; then
	(cd "$root" && go build -o "$tmp/residual" ./cmd/residual)
	bin=$tmp/residual
fi
(cd "$root" && go build -o "$tmp/serveload" ./bench/serveload)
serveload=$tmp/serveload

# wait_ready NAME LOG: wait up to 120 s for 127.0.0.1:8080 to be ready, or
# print LOG and exit 1.
wait_ready() {
	for _ in $(seq 1 120); do
		curl -sf 127.0.0.1:8080/v2/health/ready >/dev/null && return 0
		sleep 1
	done
	echo "$1: the server was not ready after 120 s:" >&2
	cat "$2" >&2
	exit 1
}
