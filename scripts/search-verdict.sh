#!/usr/bin/env bash
# The MLPerf rules verdict on an accelerator search's result: `dldriver mlperf check --runs` on the runs of
# its best passing count (the smallest count tried when none passed), kept as verdict.json and verdict.md.
#   usage: search-verdict.sh SEARCH.json CELLS_FOLDER REPS VERDICT.json VERDICT.md WORKLOAD.yaml [CHECK OPTION ...]
# CELLS_FOLDER holds the counts' r<N>/rep<k> run folders, k = 1..REPS (warm-ups included). CLOSED, OPEN and INVALID are results (exit 0; a
# shrunk demo is INVALID by design); any other failure of the check fails the job. Both files are written
# under temporary names and renamed at the end, so a killed job leaves nothing that passes for finished.
set -euo pipefail
search=$1 cells=$2 reps=$3 out=$4 md=$5
shift 5

count=$(python -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(d["best_per_host"] or min(int(c) for c in d["results"]))' "$search")
runs=()
for k in $(seq 1 "$reps"); do runs+=("$cells/r$count/rep$k"); done

rm -f "$out.tmp" "$md.tmp"
rc=0
dldriver mlperf check "$@" --runs "${runs[@]}" --json > "$out.tmp" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
  echo "dldriver mlperf check failed (exit $rc) on $cells/r$count" >&2
  rm -f "$out.tmp"
  exit "$rc"
fi

python - "$out.tmp" "$md.tmp" "$search" "$count" "${runs[@]}" <<'PY'
import json, sys

out, md, search, count, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
verdict = json.load(open(out))
result = json.load(open(search))
verdict |= {"workload": result["workload"], "search": search, "accelerators_per_host": count,
            "passed": bool(result["best_per_host"]), "runs": runs}
with open(out, "w") as f:
    json.dump(verdict, f, indent=2)
    f.write("\n")
lines = [f"# MLPerf Storage {verdict['edition']} rules verdict: {verdict['division']}", "",
         f"{result['workload']}, the runs of {count} accelerator(s) per host "
         f"({'the best passing count' if verdict['passed'] else 'no count passed; the smallest tried'}): "
         f"{verdict['subject']}", ""]
lines += [f"- {f['division']} {f['rule']}: {f['sentence']} [{f['source']}]" for f in verdict["findings"]]
lines += ["", f"({verdict['note']})", ""]
open(md, "w").write("\n".join(lines))
PY
mv "$md.tmp" "$md"
mv "$out.tmp" "$out"
