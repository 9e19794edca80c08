# MLPerf Storage accelerator search: the largest number of emulated accelerators per host whose AU holds.
# Each search (config `searches`) runs its sweep's counts, then one refinement count per round between
# the last pass and the first failure, until they are adjacent. Every run is an ordinary cell at
#   <matrix>/search_<name>/<loader>/<backend>/r<count>/rep<k>/summary.json
# (so a killed search resumes with the cells it lacks, Slurm runs each as a job, and the report lists
# them); round<r>.json says what round r decided (`dldriver mlperf search-round`), search.json the end.
# The dataset is generated once, with the search's overrides (size it for the largest count: every
# count reads the same files).


include: "mlperf_common.smk"


wildcard_constraints:
    search=_alternatives(SEARCHES),
    accels=r"[0-9]+",
    srep=r"[0-9]+",
    round=r"[0-9]+",


rule mlperf_generate:
    input:
        workload=search_workload_file,
    output:
        f"{OUT}/search_{{search}}/dataset.json",
    params:
        overrides=search_data_args,
        env=search_env,
        generator_version=GENERATOR_VERSION,
    log:
        f"{LOGS}/mlperf/{{search}}/generate.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "({params.env}; "
        " dldriver generate {input.workload} {params.overrides} --processes {threads} --quiet"
        " && dldriver manifest {input.workload} {params.overrides} > {output}"
        ") > {log} 2>&1"


rule mlperf_run:
    input:
        workload=search_workload_file,
        dataset=f"{OUT}/search_{{search}}/dataset.json",
    output:
        f"{OUT}/search_{{search}}/{{loader}}/{{backend}}/r{{accels}}/rep{{srep}}/summary.json",
    params:
        script=f"{SCRIPTS}/run-cell.sh",
        overrides=search_run_args,
        env=search_env,
        folder=subpath(output[0], parent=True),
    log:
        f"{LOGS}/mlperf/{{search}}/{{loader}}/{{backend}}/r{{accels}}/rep{{srep}}.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: 1500 * int(wc.accels),
        runtime=15,
        tasks=lambda wc: int(wc.accels),
        mpi=lambda wc: "srun" if int(wc.accels) > 1 else None,
        bench=1,
    shell:
        "({params.env}; bash {params.script} {wildcards.accels} {params.folder} run"
        " {input.workload} {params.overrides}) > {log} 2>&1"


checkpoint mlperf_round:
    input:
        cells=round_cells,
    output:
        f"{OUT}/search_{{search}}/round{{round}}.json",
    params:
        sweep=lambda wc: " ".join(str(n) for n in _search(wc)["sweep"]),
        runs=lambda wc: _search(wc).get("runs", 5),
        edition=lambda wc: _search(wc).get("edition", "v2.0"),
        workload=lambda wc: _search(wc)["workload"],
    log:
        f"{LOGS}/mlperf/{{search}}/round{{round}}.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    localrule: True
    shell:
        "dldriver mlperf search-round {input.cells} --sweep {params.sweep} --runs {params.runs}"
        " --edition {params.edition} --workload {params.workload} --out {output} > {log} 2>&1"


rule mlperf_search:
    input:
        final_round,
    output:
        f"{OUT}/search_{{search}}/search.json",
    log:
        f"{LOGS}/mlperf/{{search}}/search.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    localrule: True
    shell:
        "cp {input} {output} && python -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"sentence\"])'"
        " {output} > {log} 2>&1"
