#!/usr/bin/env bash
# Verify seqgen on each supported torch minor: for every version, in its own isolated venv,
# the whole test suite passes and `seqgen new` regenerates generated_examples/ byte-identically.
#
# usage: scripts/torch_versions.sh [VERSION...]
#   VERSION   exact torch releases to check (default: DEFAULT_VERSIONS below, one patch
#             release per verified minor; keep it in step with seqgen/compat.py's MIN_TORCH and
#             MAX_TORCH, pyproject.toml's torch pin and README's "Supported torch versions")
# environment:
#   TORCH_VENVS  where the venvs live, one per version: $TORCH_VENVS/<version>
#                (default: torch-venvs/ beside this checkout); logs go to $TORCH_VENVS/logs/
#   PYTHON       the interpreter new venvs are made from (default: python3)
#   PYTEST_ADDOPTS  extra pytest options (pytest reads it itself)
#
# A venv that already has the right torch is reused; seqgen itself is installed editable from
# this checkout on every run (a few seconds). Releases other than a local CPU build come from
# PyPI as CUDA builds (about 7 GB installed per venv, a few minutes to download); they run on
# CPU. Delete $TORCH_VENVS/<version> to free the space. Each version's suite takes minutes.
#
# pytest runs with --hypothesis-seed=0, so every version gets the same fuzzed specs: a failure
# then says something about that torch, not about the draw.
#
# Tracked files are left as they were: generated_examples/ must be clean at the start, and is
# restored after each version and on exit. Exits 1 if any version fails.
set -uo pipefail

DEFAULT_VERSIONS=(2.9.1 2.10.0 2.11.0 2.12.1 2.13.0 2.14.1 2.15.0)

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 2
venvs=${TORCH_VENVS:-$(dirname "$repo")/torch-venvs}
python=${PYTHON:-python3}
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=("${DEFAULT_VERSIONS[@]}")
mkdir -p "$venvs/logs" || exit 2

if [ -n "$(git status --porcelain -- generated_examples/)" ]; then
  echo "generated_examples/ has uncommitted changes; commit or stash them first" >&2
  exit 2
fi
restore() {
  git checkout -q -- generated_examples/ && git clean -fdq -- generated_examples/
}
trap restore EXIT
trap 'exit 130' INT TERM

installed_torch() {  # the torch release in a venv, without a local label (2.13.0+cpu -> 2.13.0)
  "$1/bin/python" -c 'from importlib.metadata import version; print(version("torch").split("+")[0])' \
    2>/dev/null
}

# Install into venv $1 torch $2 and this checkout; pip's output goes to the log.
install() {
  local venv=$1 v=$2 constraints
  constraints=$(mktemp) || return 1
  echo "torch==$v" >"$constraints"
  # PIP_CONSTRAINT replaces any configured constraints file (one that caps torch would make an
  # exact pin unsatisfiable) and holds torch at $v while pip resolves seqgen's own requirements.
  (
    export PIP_CONSTRAINT=$constraints PIP_DISABLE_PIP_VERSION_CHECK=1
    if [ "$(installed_torch "$venv")" != "$v" ]; then
      "$python" -m venv --clear "$venv" && "$venv/bin/python" -m pip install -q "torch==$v" || exit 1
    fi
    "$venv/bin/python" -m pip install -q -e ".[dev]"
  )
  local rc=$?
  rm -f "$constraints"
  return $rc
}

# A pytest summary line, shortened: "257 passed, 3 skipped".
counts() {
  grep -E '^(=+ )?[0-9]+ [a-z]+.* in [0-9.]+s' "$1" | tail -1 \
    | sed -E 's/^=+ //; s/ in [0-9.]+s.*$//; s/, [0-9]+ warnings?//'
}

failed=0
rows=()
for v in "${versions[@]}"; do
  venv="$venvs/$v"
  log="$venvs/logs/$v.log"
  : >"$log"
  start=$SECONDS
  reused=fresh
  [ "$(installed_torch "$venv")" = "$v" ] && reused=reused
  echo "torch $v: installing ($reused venv $venv), then testing; log: $log" >&2
  tests="-" examples="-" verdict=ok
  if ! install "$venv" "$v" >>"$log" 2>&1; then
    verdict=FAIL
    tests="not run (pip failed; see $log)"
  else
    install_s=$((SECONDS - start))
    echo "== torch $v: pytest" >>"$log"
    t0=$SECONDS
    "$venv/bin/python" -m pytest -q -p no:cacheprovider --hypothesis-seed=0 >>"$log" 2>&1
    rc=$?
    tests="$(counts "$log")"
    [ -n "$tests" ] || tests="pytest exit $rc"
    [ $rc -eq 0 ] || verdict=FAIL
    tests_s=$((SECONDS - t0))

    echo "== torch $v: seqgen new --force generated_examples/*.seq" >>"$log"
    if ! SEQGEN_NO_CACHE=1 "$venv/bin/seqgen" new -q --force generated_examples/*.seq >>"$log" 2>&1; then
      examples="seqgen new failed"
      verdict=FAIL
    elif ! git diff --exit-code --stat -- generated_examples/ >>"$log" 2>&1 \
        || [ -n "$(git status --porcelain -- generated_examples/)" ]; then
      git diff -- generated_examples/ >>"$log"
      examples="DIFFER"
      verdict=FAIL
    else
      examples="byte-identical"
    fi
    restore
  fi
  secs=$((SECONDS - start))
  [ $verdict = ok ] || failed=1
  line="torch $v: $verdict - tests: $tests; examples: $examples; ${secs}s ($reused venv"
  [ -n "${install_s:-}" ] && line+=", install ${install_s}s, tests ${tests_s}s"
  line+="); log: $log"
  echo "$line"
  rows+=("$(printf '%-8s %-5s %-34s %-16s %6ss' "$v" "$verdict" "$tests" "$examples" "$secs")")
  unset install_s tests_s
done

echo
printf '%-8s %-5s %-34s %-16s %7s\n' torch ok? tests examples time
printf '%s\n' "${rows[@]}"
exit $failed
