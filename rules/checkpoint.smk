# Stage 3b: checkpoint-only workloads, one job per (workload, backend, ranks, repetition). No dataset:
# each job writes the checkpoints through the backend and reads them back.


rule checkpoint_run:
    input:
        workload=workload_file,
        plan=f"{OUT}/{{workload}}/plan.json",
    output:
        f"{OUT}/{{workload}}/checkpoint/{{backend}}/r{{ranks}}/rep{{rep}}/summary.json",
    wildcard_constraints:
        workload=_alternatives(CKPT_WORKLOADS),
    params:
        script=f"{SCRIPTS}/run-cell.sh",
        overrides=checkpoint_args,
        scale=checkpoint_scale,
        env=backend_env,
        folder=subpath(output[0], parent=True),
    log:
        f"{LOGS}/checkpoint/{{workload}}/{{backend}}/r{{ranks}}/rep{{rep}}.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: 1500 * int(wc.ranks),
        runtime=15,
        tasks=lambda wc: int(wc.ranks),
        mpi=run_resources_mpi,
        bench=1,
    shell:
        "({params.env}; bash {params.script} {wildcards.ranks} {params.folder} checkpoint"
        " {input.workload} {params.overrides} --checkpoint-scale {params.scale} --cell workload={wildcards.workload},"
        "loader=checkpoint,backend={wildcards.backend},ranks={wildcards.ranks},rep={wildcards.rep}) > {log} 2>&1"
