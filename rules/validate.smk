# Stage 1: every workload, with its overrides, is checked strictly and its plan recorded before any
# data is written. A config error stops the matrix here, naming the key.


rule validate:
    input:
        workload_file,
    output:
        f"{OUT}/{{workload}}/plan.json",
    params:
        overrides=workload_args,
    log:
        f"{LOGS}/validate/{{workload}}.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    localrule: True
    shell:
        "dldriver validate --json {input} {params.overrides} > {output} 2> {log}"
