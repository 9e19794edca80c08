# MLPerf Storage accelerator search: the largest number of emulated accelerators per host whose AU holds.
# Each search (config `searches`) runs its sweep's counts on its `hosts` (a count N per host is one run of
# hosts x N ranks; under Slurm one job over that many nodes, N tasks each), then one refinement count per round between
# the last pass and the first failure, until they are adjacent. Every run is an ordinary cell at
#   <matrix>/search_<name>/<loader>/<backend>/r<count>/rep<k>/summary.json
# (so a killed search resumes with the cells it lacks, Slurm runs each as a job, and the report lists
# them); round<r>.json says what round r decided (`dldriver mlperf search-round`), search.json the end.
# The dataset is sized once by `dldriver datasize` (datasize.json: MLPerf's rules for the largest count of
# the sweep, the search's host memory, times its dataset_scale), generated once with those overrides, and
# every count's runs read it with the same overrides.


include: "mlperf_common.smk"


wildcard_constraints:
    search=_alternatives(SEARCHES),
    accels=r"[0-9]+",
    srep=r"[0-9]+",
    round=r"[0-9]+",


rule mlperf_generate:
    # One job sizes (datasize.json) and generates: under Slurm each job costs two Snakemake start-ups and
    # the plugin's status polling, and the sizing's default memory is then that of the node that runs it.
    input:
        workload=search_workload_file,
    output:
        sizing=f"{OUT}/search_{{search}}/datasize.json",
        dataset=f"{OUT}/search_{{search}}/dataset.json",
    params:
        overrides=search_data_args,
        options=search_datasize_options,
        sized=sized_overrides,
        generation=search_generation_args,
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
        " dldriver datasize {input.workload} {params.overrides} {params.options} --json > {output.sizing}"
        " && {params.sized}"
        " && dldriver generate {input.workload} \"${{sized[@]}}\" {params.generation} --processes {threads} --quiet"
        " && dldriver manifest {input.workload} \"${{sized[@]}}\" {params.generation} > {output.dataset}"
        ") > {log} 2>&1"


rule mlperf_run:
    input:
        workload=search_workload_file,
        sizing=f"{OUT}/search_{{search}}/datasize.json",
        dataset=f"{OUT}/search_{{search}}/dataset.json",
    output:
        f"{OUT}/search_{{search}}/{{loader}}/{{backend}}/r{{accels}}/rep{{srep}}/summary.json",
    params:
        script=f"{SCRIPTS}/run-cell.sh",
        sized=sized_overrides,
        loader=search_loader_args,
        env=search_env,
        folder=subpath(output[0], parent=True),
        hosts=lambda wc: search_hosts(wc.search),
        ranks=lambda wc: search_hosts(wc.search) * int(wc.accels),
    log:
        f"{LOGS}/mlperf/{{search}}/{{loader}}/{{backend}}/r{{accels}}/rep{{srep}}.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    resources:
        # Per node (Slurm's --mem): each host runs its count of ranks.
        mem_mb=lambda wc: 1500 * int(wc.accels),
        runtime=15,
        tasks=lambda wc: search_cell_resources(wc.search, int(wc.accels))["tasks"],
        tasks_per_node=lambda wc: search_cell_resources(wc.search, int(wc.accels))["tasks_per_node"],
        nodes=lambda wc: search_cell_resources(wc.search, int(wc.accels))["nodes"],
        mpi=lambda wc: search_cell_resources(wc.search, int(wc.accels))["mpi"],
        bench=1,
    shell:
        "({params.env}; {params.sized}; bash {params.script} --hosts {params.hosts}"
        " {params.ranks} {params.folder} run"
        " {input.workload} \"${{sized[@]}}\" {params.loader}) > {log} 2>&1"


checkpoint mlperf_round:
    input:
        cells=round_cells,
        sizing=f"{OUT}/search_{{search}}/datasize.json",
    output:
        f"{OUT}/search_{{search}}/round{{round}}.json",
    params:
        sweep=lambda wc: " ".join(str(n) for n in _search(wc)["sweep"]),
        runs=lambda wc: _search(wc).get("runs", 5),
        edition=lambda wc: _search(wc).get("edition", "v2.0"),
        workload=lambda wc: _search(wc)["workload"],
        hosts=lambda wc: search_hosts(wc.search),
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
        " --edition {params.edition} --workload {params.workload} --datasize {input.sizing} --hosts {params.hosts}"
        " --out {output} > {log} 2>&1"


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


rule mlperf_verdict:
    # The flow ends with the rules verdict on the best passing count's runs (scripts/search-verdict.sh);
    # INVALID and OPEN are results, not failures (a shrunk demo is INVALID by design). The report reads it.
    input:
        search=f"{OUT}/search_{{search}}/search.json",
        workload=search_workload_file,
    output:
        verdict=f"{OUT}/search_{{search}}/verdict.json",
        md=f"{OUT}/search_{{search}}/verdict.md",
    params:
        script=f"{SCRIPTS}/search-verdict.sh",
        cells=lambda wc: f"{SEARCH_OUT[wc.search]}/{_search(wc)['loader']}/{_search(wc)['backend']}",
        reps=lambda wc: search_reps(wc.search),
        options=search_check_options,
    log:
        f"{LOGS}/mlperf/{{search}}/verdict.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    localrule: True
    shell:
        "bash {params.script} {input.search} {params.cells} {params.reps} {output.verdict} {output.md}"
        " {input.workload} {params.options} > {log} 2>&1"
