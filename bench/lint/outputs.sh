#!/usr/bin/env bash
# outputs.sh BIN OUT_DIR: writes what `BIN lint` prints (stdout, stderr and
# exit code, in text, JSON and SARIF) on the shared lint corpus (one
# invocation over all 1000 files), on every .sql and change spec of this
# repository's testdata/ and examples/ (one invocation each), and on every
# Ory Kratos migration of ../shared/datasets (one invocation each, one over
# all PostgreSQL files, and one with --dir over their directory), so that two binaries' outputs can be compared
# byte for byte:
#
#   bench/lint/outputs.sh /tmp/old/phasekit /tmp/out-old
#   bench/lint/outputs.sh bin/phasekit /tmp/out-new
#   diff -r /tmp/out-old /tmp/out-new && echo identical
set -euo pipefail
bin=$(realpath "$1")
out=$(realpath -m "$2")
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${SHARED:-$here/../shared}
mkdir -p "$out"

# run NAME FILE...: the three formats of one invocation.
run() {
	local name=$1
	shift
	mkdir -p "$(dirname "$out/$name")"
	for f in text json sarif; do
		set +e
		"$bin" lint --format "$f" "$@" >"$out/$name.$f" 2>"$out/$name.$f.err"
		echo $? >"$out/$name.$f.rc"
		set -e
	done
}

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
python3 "$shared/bench/lint/gen.py" "$corpus" >/dev/null
cd "$corpus"
run corpus/all $(ls *.sql | sort)
cd "$here"
while IFS= read -r f; do
	run "repo/$f" "$f"
done < <(find testdata examples plancheck/testdata change/testdata phases/testdata -type f \( -name '*.sql' -o -name '*.yaml' -o -name '*.yml' \) 2>/dev/null | sort)
k=$shared/datasets/kratos-migrations
if [ -d "$k" ]; then
	cd "$k"
	while IFS= read -r f; do
		run "kratos/$f" "$f"
	done < <(find migrations -name '*.sql' | sort)
	run kratos/all-postgres $(find migrations -name '*postgres*.sql' | sort)
	run kratos/dir --dir migrations
fi
