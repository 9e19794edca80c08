# Stage 3: one job per training cell (workload, loader, backend, ranks, repetition).
# The engine writes its results under a temporary name and moves them into place when complete, so
# a killed job leaves no summary.json: Snakemake reruns exactly the cells that lack one.


rule run:
    input:
        workload=workload_file,
        dataset=f"{OUT}/{{workload}}/{{backend}}/dataset.json",
    output:
        f"{OUT}/{{workload}}/{{loader}}/{{backend}}/r{{ranks}}/rep{{rep}}/summary.json",
    wildcard_constraints:
        workload=_alternatives(TRAIN_WORKLOADS),
    params:
        script=f"{SCRIPTS}/run-cell.sh",
        overrides=run_args,
        env=backend_env,
        folder=subpath(output[0], parent=True),
    log:
        f"{LOGS}/run/{{workload}}/{{loader}}/{{backend}}/r{{ranks}}/rep{{rep}}.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: 1500 * int(wc.ranks),
        runtime=15,
        tasks=lambda wc: int(wc.ranks),
        mpi=run_resources_mpi,
        # One measurement at a time on a local machine: concurrent cells would share its cores and
        # disturb each other's figures (the default profile provides bench=1; Slurm ignores it).
        bench=1,
    shell:
        "({params.env}; bash {params.script} {wildcards.ranks} {params.folder} run"
        " {input.workload} {params.overrides} --cell workload={wildcards.workload},loader={wildcards.loader},"
        "backend={wildcards.backend},ranks={wildcards.ranks},rep={wildcards.rep}) > {log} 2>&1"
