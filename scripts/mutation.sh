#!/usr/bin/env bash
# Mutation testing of parity's core modules with cosmic-ray. Not in CI: run it by hand before
# resolving a change to a core module, and quote the per-module scores.
#
#   scripts/mutation.sh                    every core module (hours on 2 cores)
#   scripts/mutation.sh checks codec       some of them (names in SOURCE below)
#   scripts/mutation.sh lake_wal           one file of a several-file module (lake = its 3 files)
#   MUTATION_JOBS=2 scripts/mutation.sh    modules in parallel (each in its own copy)
#   MUTATION_SUMMARY_ONLY=1 scripts/mutation.sh checks   re-print the score of a (running) session
#   MUTATION_SAMPLE=60 scripts/mutation.sh checks         a seeded random sample of 60 mutants only
#   MUTATION_RERUN_SURVIVORS=1 scripts/mutation.sh checks re-run only the last session's survivors
#                                          (and undecided) against the current tests: the same mutants
#                                          and sample; valid while src/ is unchanged and tests were
#                                          only added (a killed mutant stays killed)
#   MUTATION_TIMEOUT=60                    seconds per mutant's tests (default 300); a hang counts as
#                                          killed, so keep it a few times the subset's normal time
#
# cosmic-ray applies each mutant to the source file and runs the test command. The default runner
# (scripts/mutation_forkserver.py) keeps numpy/pandas/sklearn/pytest imported in a server that never
# loads parity or onnxruntime, and forks one child per mutant that imports the mutated parity and
# creates its own onnxruntime sessions: a fresh parity/onnxruntime process without paying ~5 s of
# library imports per mutant. (onnxruntime crashes in children forked after it started, which is
# why mutmut 3's fork mode reports bogus "segfault" kills; here the parent never starts it.)
# MUTATION_RUNNER=python runs a whole new interpreter per mutant instead. A test process that still
# dies of a signal is reported as undecided: neither killed nor survived. The time limit counts as
# a kill (an endless loop is a detected mutant).
#
# Each module is mutated in its own copy of the tracked files (git add a new test file first)
# under $MUTATION_DIR (default .mutation/), imported first through PYTHONPATH, so the checkout is
# never modified and modules can run side by side. Results: .mutation/<module>/session.sqlite, survivors' diffs in survivors.txt.
# Score = killed / (killed + survived). Operators excluded (see the config below): replacing an
# arithmetic operator by a shift, floor division, modulo, power or xor, or + - * / by | &; on the
# float arrays of this code they only duplicate the arithmetic swaps that are kept.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
BIN=$(dirname "$PY")
TIMEOUT=${MUTATION_TIMEOUT:-300}
PYTEST_ARGS="-x -q -p no:randomly -p no:cacheprovider"

if [[ "${1:-}" == "--run-tests" ]]; then
  # Internal (MUTATION_RUNNER=python): one mutant's tests in a new interpreter. Exit 0 = survived.
  shift
  set +e
  # shellcheck disable=SC2086
  OPENBLAS_NUM_THREADS=1 timeout "$TIMEOUT" "$PY" -m pytest $PYTEST_ARGS "$@"
  rc=$?
  set -e
  if (( rc >= 128 )); then
    echo "MUTATION-UNDECIDED: the test process died of signal $(( rc - 128 ))"
    exit 0  # reported as undecided by the summary, not as a kill
  fi
  exit "$rc"
fi

# module -> its source files (space-separated: a module may be several files, all mutated in one
# session), and the tests that cover it (fast subsets: every mutant runs them; no spaces inside one
# argument; fast files first: with -x a killed mutant stops at its first failure). Left out of the
# registry's subset: the two concurrent-push tests and tests/registry/test_crash.py (a Python
# subprocess per crash step: together ~40 s a mutant on a loaded machine); test_registry.py checks
# the debris cleanup and history derivation they rely on in-process, test_storage.py the lock.
LAKE_FILES="src/parity/lake/_writer.py src/parity/lake/_layout.py src/parity/lake/_wal.py"
LAKE_TESTS="tests/server/test_lake.py tests/test_atomic_writes.py"
CONCURRENT=tests/registry/test_registry.py::test_concurrent_pushes_of
SLOW="--deselect=${CONCURRENT}_distinct_artifacts_get_distinct_versions"
SLOW+=" --deselect=${CONCURRENT}_identical_content_make_one_version"
REGISTRY_TESTS="tests/registry/test_registry.py tests/registry/test_storage.py $SLOW"
STORAGE_TESTS="tests/registry/test_storage.py tests/registry/test_registry.py $SLOW"
declare -A SOURCE=(
  [checks]=src/parity/checks.py
  [codec]=src/parity/codec.py
  [registry]=src/parity/registry/_registry.py
  [storage]=src/parity/registry/_storage.py
  [lake]=$LAKE_FILES
  [lake_writer]=src/parity/lake/_writer.py
  [lake_layout]=src/parity/lake/_layout.py
  [lake_wal]=src/parity/lake/_wal.py
  [batching]=src/parity/server/_batching.py
  [profile]=src/parity/profile.py
)
declare -A TESTS=(
  [checks]="tests/test_checks.py"
  [codec]="tests/test_codec.py"
  [registry]=$REGISTRY_TESTS
  [storage]=$STORAGE_TESTS
  [lake]=$LAKE_TESTS
  [lake_writer]=$LAKE_TESTS
  [lake_layout]=$LAKE_TESTS
  [lake_wal]=$LAKE_TESTS
  [batching]="tests/server/test_batching.py"
  [profile]="tests/test_profile.py"
)
MODULES=("$@")
if (( ${#MODULES[@]} == 0 )); then
  MODULES=(checks codec registry storage lake batching profile)
fi
OUT=${MUTATION_DIR:-$ROOT/.mutation}
if [[ ! -x "$BIN/cosmic-ray" ]]; then
  echo "cosmic-ray is not installed: $PY -m pip install -e '.[mutation]'" >&2
  exit 2
fi

summarize() {
  "$PY" - "$OUT/$1" "$1" <<'PYEOF'
import sqlite3
import sys
from pathlib import Path

work, name = Path(sys.argv[1]), sys.argv[2]
db = sqlite3.connect(work / "session.sqlite")
total = db.execute("select count(*) from mutation_specs").fetchone()[0]
rows = db.execute(
    "select r.test_outcome, r.worker_outcome, r.output, r.diff, s.module_path, s.start_pos_row, s.operator_name"
    " from work_results r join mutation_specs s on r.job_id = s.job_id"
).fetchall()
killed = survived = undecided = incompetent = excluded = sampled_out = 0
survivors = []
for outcome, worker, output, diff, path, line, op in rows:
    outcome, worker = (outcome or "").lower(), (worker or "").lower()
    if worker == "skipped" and output == "sampled out":
        sampled_out += 1
    elif worker == "skipped":
        excluded += 1
    elif "MUTATION-UNDECIDED" in (output or ""):
        undecided += 1
    elif outcome == "killed":
        killed += 1
    elif outcome == "survived":
        survived += 1
        survivors.append(f"--- {path}:{line} {op}\n{diff}")
    else:
        incompetent += 1
(work / "survivors.txt").write_text("\n".join(survivors))
decided = killed + survived
score = 100.0 * killed / decided if decided else 0.0
print(
    f"{name}: {killed}/{decided} killed ({score:.1f}%), {survived} survived, {undecided} undecided, "
    f"{incompetent} incompetent, {excluded} excluded operators, {sampled_out} sampled out, "
    f"{total - len(rows)} not run yet; "
    f"survivors: {work / 'survivors.txt'}"
)
PYEOF
}

run_module() {
  local name=$1 src=${SOURCE[$1]} tests=${TESTS[$1]}
  local work=$OUT/$name rerun=${MUTATION_RERUN_SURVIVORS:-}
  local f paths=""
  for f in $src; do
    [[ -f "$ROOT/$f" ]] || { echo "$name: no source file $f" >&2; return 2; }
    paths+="${paths:+, }\"$f\""
  done
  if [[ -n "$rerun" ]]; then
    [[ -f "$work/session.sqlite" ]] || { echo "$name: no session to re-run in $work" >&2; return 2; }
    rm -rf "$work/repo" && mkdir -p "$work/repo"
  else
    rm -rf "$work" && mkdir -p "$work/repo"
  fi
  (cd "$ROOT" && git ls-files -z | xargs -0 tar cf - | tar xf - -C "$work/repo")
  local command="bash $ROOT/scripts/mutation.sh --run-tests $tests"
  if [[ "${MUTATION_RUNNER:-forkserver}" == forkserver ]]; then
    command="$PY $ROOT/scripts/mutation_forkserver.py run $work/server.sock $TIMEOUT $PYTEST_ARGS $tests"
  fi
  cat > "$work/config.toml" <<TOMLEOF
[cosmic-ray]
module-path = [$paths]
timeout = $(( TIMEOUT + 60 )).0
excluded-modules = []
test-command = "$command"

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = [
  'core/ReplaceBinaryOperator_\w+_(LShift|RShift|FloorDiv|Mod|Pow|BitXor)$',
  'core/ReplaceBinaryOperator_(Add|Sub|Mul|Div|Mod|Pow|FloorDiv|LShift|RShift|BitXor)_(BitOr|BitAnd)$',
]
TOMLEOF
  cd "$work/repo"
  export PYTHONPATH=$work/repo/src:$work/repo OPENBLAS_NUM_THREADS=1
  local server=""
  if [[ "${MUTATION_RUNNER:-forkserver}" == forkserver ]]; then
    rm -f "$work/server.sock"  # a re-run's old socket would pass the wait below before the server binds
    "$PY" "$ROOT/scripts/mutation_forkserver.py" serve "$work/server.sock" > "$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1200); do [[ -S "$work/server.sock" ]] && break; sleep 0.1; done
  fi
  if [[ -n "$rerun" ]]; then
    # Same mutants, same sample: forget the survivors' and undecided results so exec runs them again.
    "$PY" - "$work/session.sqlite" <<'PYEOF'
import sqlite3
import sys

db = sqlite3.connect(sys.argv[1])
db.execute(
    "delete from work_results where test_outcome = 'SURVIVED' or output like '%MUTATION-UNDECIDED%'"
    " or (worker_outcome != 'SKIPPED' and test_outcome is null)"
)
db.commit()
PYEOF
  else
    "$BIN/cosmic-ray" init "$work/config.toml" "$work/session.sqlite"
    "$BIN/cr-filter-operators" "$work/session.sqlite" "$work/config.toml"
  fi
  if [[ -z "$rerun" && -n "${MUTATION_SAMPLE:-}" ]]; then
    # Run a seeded random sample of N mutants; the rest are recorded as "sampled out".
    "$PY" - "$work/session.sqlite" "$MUTATION_SAMPLE" <<'PYEOF'
import random
import sqlite3
import sys

db = sqlite3.connect(sys.argv[1])
# Job ids are random uuids: order by what the mutant is, so the same seed gives the same sample.
pending = [r[0] for r in db.execute(
    "select s.job_id from mutation_specs s where s.job_id not in (select job_id from work_results)"
    " order by s.module_path, s.start_pos_row, s.start_pos_col, s.operator_name, s.occurrence"
)]
random.Random(0).shuffle(pending)
drop = pending[int(sys.argv[2]):]
db.executemany(
    "insert into work_results (worker_outcome, output, test_outcome, diff, job_id) values ('SKIPPED', 'sampled out', NULL, NULL, ?)",
    [(j,) for j in drop],
)
db.commit()
PYEOF
  fi
  local status=0
  if ! "$BIN/cosmic-ray" baseline "$work/config.toml" > "$work/baseline.log" 2>&1; then
    echo "$name: the tests fail on the unmutated code (see $work/baseline.log)" >&2
    status=1
  else
    "$BIN/cosmic-ray" exec "$work/config.toml" "$work/session.sqlite" > "$work/exec.log" 2>&1 || status=$?
    summarize "$name"
  fi
  if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; fi
  return "$status"
}

main() {
  if [[ "${MUTATION_SUMMARY_ONLY:-}" == 1 ]]; then
    for m in "${MODULES[@]}"; do summarize "$m"; done
    return 0
  fi
  local m p JOBS=${MUTATION_JOBS:-1} pids=()
  for m in "${MODULES[@]}"; do
    [[ -n "${SOURCE[$m]:-}" ]] || { echo "unknown module $m; known: ${!SOURCE[*]}" >&2; return 2; }
    run_module "$m" &
    pids+=($!)
    if (( ${#pids[@]} >= JOBS )); then
      wait "${pids[0]}" || true
      pids=("${pids[@]:1}")
    fi
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
}

# One line, read whole before it runs: bash reads a script as it goes, so editing this file
# during an hours-long run would otherwise make the running copy execute shifted text.
main; exit $?
