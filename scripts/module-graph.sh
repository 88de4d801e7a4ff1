#!/usr/bin/env bash
# The library's module dependency graph, one line per module ("a -> b, c":
# a `use`s items of b and c), then every import cycle among modules.
# Exits 1 when there is a cycle. Needs cargo-modules (installed here when
# missing: 0.27 is the last release for rustc 1.95).
#   scripts/module-graph.sh [--cycles-only]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-modules >/dev/null || cargo install --locked cargo-modules@0.27.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo modules structure --lib --no-fns --no-traits --no-types 2>/dev/null |
  sed 's/\x1b\[[0-9;]*m//g' > "$work/modules"
cargo modules dependencies --lib 2>/dev/null > "$work/deps.dot"
python3 - "$work/modules" "$work/deps.dot" "${1:-}" <<'PY'
import collections, re, sys
mods, stack = set(), []
for line in open(sys.argv[1]):
    m = re.search(r"mod (\w+)", line)
    if m:
        depth = len(line[: line.index("mod ")]) // 4
        stack = stack[: depth - 1] + [m.group(1)]
        mods.add("::".join(stack))
def module(path):
    parts = path.split("::")[1:]
    for i in range(len(parts), 0, -1):
        if "::".join(parts[:i]) in mods:
            return "::".join(parts[:i])
edges = collections.defaultdict(set)
for line in open(sys.argv[2]):
    m = re.match(r'\s*"(lgtm_proxy::[^"]+)" -> "(lgtm_proxy::[^"]+)" \[label="uses"', line)
    if m:
        a, b = (module(p) for p in m.groups())
        if a and b and a != b:
            edges[a].add(b)
if sys.argv[3] != "--cycles-only":
    for a in sorted(edges):
        print(f"{a} -> {', '.join(sorted(edges[a]))}")
index, low, on, st, cycles, n = {}, {}, set(), [], [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            cycles.append(sorted(comp))
for v in sorted(mods):
    if v not in index:
        visit(v)
for c in cycles:
    print("cycle:", " <-> ".join(c))
sys.exit(1 if cycles else 0)
PY
