#!/usr/bin/env bash
# lint.sh [BASE]: checks what changed since BASE (default $HYMIG_LINT_BASE, else the newest commit
# alone: HEAD~1) and fails on any finding:
#   - C++ lines against .clang-format (git clang-format: only the lines the change touches);
#   - changed .cpp files with clang-tidy (.clang-tidy), from build/release's compile commands;
#   - every shell script with shellcheck (.shellcheckrc), warnings and errors (all of them: it is
#     quick, and the tree is clean).
# Before pushing: `bash scripts/lint.sh origin/main`.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-${HYMIG_LINT_BASE:-HEAD~1}}
git rev-parse -q --verify "$base^{commit}" >/dev/null || { echo "lint: no commit '$base' to compare with" >&2; exit 2; }
mapfile -t files < <(git diff --name-only --diff-filter=ACMR "$base" HEAD -- . ':!fuzz/corpus')
echo "lint: ${#files[@]} files changed since $(git rev-parse --short "$base")"
fail=0
cxx=() cpp=()
for f in "${files[@]}"; do
  case $f in
    *.cpp) cxx+=("$f") cpp+=("$f") ;;
    *.hpp) cxx+=("$f") ;;
  esac
done

tool() { command -v "$1" >/dev/null || command -v "$1-14" >/dev/null || { echo "lint: $1 is not installed (scripts/bootstrap.sh installs it)" >&2; exit 2; }; }
pick() { command -v "$1-14" 2>/dev/null || command -v "$1"; }

if [ ${#cxx[@]} -gt 0 ]; then
  tool git-clang-format
  out=$("$(pick git-clang-format)" --binary "$(pick clang-format)" --diff "$base" -- "${cxx[@]}" 2>&1 || true)
  if [ -n "$out" ] && ! grep -q -E '^(no modified files to format|clang-format did not modify any files)' <<<"$out"; then
    echo "lint: C++ lines off .clang-format (fix: git clang-format $base):"
    echo "$out" | head -n 80
    fail=1
  fi
fi
if [ ${#cpp[@]} -gt 0 ]; then
  tool clang-tidy
  db=build/release/compile_commands.json
  [ -f "$db" ] || { echo "lint: $db is missing: build first (scripts/build.sh)" >&2; exit 2; }
  for f in "${cpp[@]}"; do
    grep -q "/$f\"" "$db" || continue  # not built here (fuzz targets)
    if ! "$(pick clang-tidy)" -p build/release --quiet "$f" >/tmp/hymig-lint.$$ 2>&1; then
      echo "lint: clang-tidy on $f:"
      grep -E 'warning:|error:' /tmp/hymig-lint.$$ | head -n 20
      fail=1
    fi
  done
  rm -f /tmp/hymig-lint.$$
fi
tool shellcheck
mapfile -t sh < <(git ls-files '*.sh')
if ! shellcheck -x -S warning "${sh[@]}"; then
  echo "lint: shellcheck found the above"
  fail=1
fi
[ "$fail" = 0 ] && echo "lint: clean"
exit "$fail"
