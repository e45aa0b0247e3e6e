#!/usr/bin/env bash
# Draws the dependency graph of brainmri's libraries and executables from CMake's own view of the
# build (cmake --graphviz): docs/images/architecture.svg and .png. Third-party libraries, tests and
# benchmarks are left out; an edge A -> B means A links B.
#
#   tools/architecture_graph.sh [build directory, default build/release]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build/release}
command -v dot >/dev/null || { echo "architecture_graph.sh: needs Graphviz's dot (apt-get install graphviz)" >&2; exit 1; }
[[ -f $build/CMakeCache.txt ]] || { echo "architecture_graph.sh: $build is not a configured build (run scripts/setup.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/CMakeGraphVizOptions.cmake" <<'CMAKE'
set(GRAPHVIZ_EXTERNAL_LIBS FALSE)
set(GRAPHVIZ_GENERATE_PER_TARGET FALSE)
set(GRAPHVIZ_GENERATE_DEPENDERS FALSE)
set(GRAPHVIZ_IGNORE_TARGETS "_tests$" "_bench$" "^brainmri_warnings$" "^brainmri_torch$" "^brainmri_torch_pch$" "^brainmri_hdf5$")
CMAKE
cp "$work/CMakeGraphVizOptions.cmake" "$build/CMakeGraphVizOptions.cmake"
cmake --graphviz="$work/graph.dot" "$build" >/dev/null 2>&1
rm -f "$build/CMakeGraphVizOptions.cmake"
# CMake names nodes by target; keep the names, draw top-down, libraries as boxes.
python3 - "$work/graph.dot" "$work/clean.dot" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
labels = dict(re.findall(r'"(node\d+)" \[ label = "([^"]+)"', text))
edges = re.findall(r'"(node\d+)" -> "(node\d+)"', text)
keep = {n: l for n, l in labels.items() if l.startswith("brainmri")}
out = ['digraph brainmri {', '  rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];']
for n, l in sorted(keep.items(), key=lambda x: x[1]):
    shape = ', fillcolor="#fde9c8", shape=component' if not l.startswith("brainmri_") else ""
    out.append(f'  "{l}" [label="{l.removeprefix("brainmri_")}"{shape}];')
seen = set()
for a, b in edges:
    if a in keep and b in keep and (a, b) not in seen:
        seen.add((a, b))
        out.append(f'  "{keep[a]}" -> "{keep[b]}";')
out.append("}")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
mkdir -p docs/images
# Transitive reduction: an edge implied by a longer path is not drawn (the links still exist).
tred "$work/clean.dot" > "$work/reduced.dot"
dot -Tsvg "$work/reduced.dot" -o docs/images/architecture.svg
dot -Tpng -Gdpi=110 "$work/reduced.dot" -o docs/images/architecture.png
echo "wrote docs/images/architecture.svg and .png"
