# Stage 2: one dataset per (workload, backend), shared by every loader, rank count and repetition
# that reads it. `dldriver generate` skips files its manifest already records, so a rerun after a
# crash only writes what is missing.


rule generate:
    input:
        workload=workload_file,
        plan=f"{OUT}/{{workload}}/plan.json",
    output:
        f"{OUT}/{{workload}}/{{backend}}/dataset.json",
    params:
        overrides=data_args,
        env=backend_env,
        # A dl-driver that writes other bytes for the same config regenerates (Snakemake reruns a job
        # whose params changed); its runs would otherwise stop on the old manifest's generator_version.
        generator_version=GENERATOR_VERSION,
    log:
        f"{LOGS}/generate/{{workload}}/{{backend}}.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "({params.env}; "
        " dldriver generate {input.workload} {params.overrides} --processes {threads} --quiet"
        " && dldriver verify {input.workload} {params.overrides} --quick"
        " && dldriver manifest {input.workload} {params.overrides} > {output}"
        ") > {log} 2>&1"
