#!/usr/bin/env bash
# Runs the test suite once per Keras backend and fails if any backend fails.
# BACKENDS="jax torch" restricts the loop; extra arguments go to pytest.
set -u
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
BACKENDS=${BACKENDS:-"tensorflow jax torch"}
# Two pytest-xdist workers: JAX/TF tests are dominated by single-threaded compilation.
WORKERS=${PYTEST_WORKERS:-2}
REPORTS=$(mktemp -d)
trap 'rm -rf "$REPORTS"' EXIT
export TF_CPP_MIN_LOG_LEVEL=3
# One JAX compilation cache for this run, shared by both workers and the subprocesses the
# tests start: identical programs (a codec's encode graph, a train step) compiled again by
# another model instance, worker or process are read back instead of recompiled (measured:
# models/dmcodec_test.py 317 s -> 192 s of CPU). Fresh per run unless set by the caller.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$REPORTS/jax_cache}"
# Small programs too (JAX keeps only those that took >= 1 s by default): model builds run
# ~100 eager initialisers of ~90 ms each, the same in every worker and subprocess.
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-0}"

# The listening report's browser test fails, rather than skips, without Chromium: make install
# puts Debian's chromium and chromium-driver on the machine.
export DMCODEC_REQUIRE_BROWSER="${DMCODEC_REQUIRE_BROWSER:-1}"
# Its screenshot (and any later test artifacts) land here.
export DMCODEC_TEST_ARTIFACTS="${DMCODEC_TEST_ARTIFACTS:-$PWD/outputs/test_artifacts}"

failed_backends=()
for backend in $BACKENDS; do
  echo "=== KERAS_BACKEND=$backend"
  start=$SECONDS
  # loadfile keeps each file's module fixtures in one worker; conftest.py puts the slowest
  # files first, and --no-loadscope-reorder keeps that order (xdist would sort by test count).
  KERAS_BACKEND=$backend "$PY" -m pytest -q -p no:cacheprovider -n "$WORKERS" \
    --dist loadfile --no-loadscope-reorder --durations=25 \
    --junitxml="$REPORTS/$backend.xml" "$@"
  rc=$?
  if [ "$rc" -eq 5 ]; then
    # pytest's "no tests collected": an empty suite is a broken suite, not a pass.
    echo "!!! $backend: pytest collected no tests (exit 5)"
    failed_backends+=("$backend")
  elif [ "$rc" -ne 0 ]; then
    echo "!!! $backend: pytest exited with $rc"
    failed_backends+=("$backend")
  fi
  echo "=== $backend finished in $((SECONDS - start)) s"
done

# One closing line over all backends: "total: N passed, N failed, N skipped".
"$PY" - "$REPORTS" <<'PYEOF'
import sys, pathlib, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for report in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        total = int(suite.get("tests", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        passed += total - bad - skip
        failed += bad
        skipped += skip
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
PYEOF

if [ ${#failed_backends[@]} -ne 0 ]; then
  echo "FAILED backends: ${failed_backends[*]}"
  exit 1
fi
echo "all backends passed"
