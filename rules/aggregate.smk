# Stage 4: every run of the matrix -> runs.csv/parquet, per-cell tables, plots and report.html.
# With a baseline in the config, a separate verdict step compares each cell with it and fails the
# workflow on a regression, after the report is written (a failed job's outputs are deleted, so the
# report must not be that job's output).

REPORT_FILES = [f"{REPORT}/{name}" for name in
                ("runs.csv", "runs.parquet", "cells.csv", "cells.md", "report.html")]


rule aggregate:
    input:
        train_cells(),
        checkpoint_cells(),
        # The report opens with each accelerator search's figure and its rules verdict: wait for them
        # (rules/mlperf.smk, included after this file, hence a function).
        lambda wildcards: search_results() + search_verdicts(),
    output:
        REPORT_FILES,
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
    log:
        f"{LOGS}/aggregate.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    shell:
        "dldriver aggregate {params.results} --out {params.out} > {log} 2>&1"


rule verdict:
    input:
        REPORT_FILES,
        baseline=config["baseline"] or [],
    output:
        # Only a flag: verdicts.csv/.md must survive a failing comparison.
        touch(f"{REPORT}/verdict.ok"),
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        tolerance=config.get("tolerance", "5%"),
    log:
        f"{LOGS}/verdict.log",
    conda:
        "../envs/dldriver.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    shell:
        "dldriver aggregate {params.results} --out {params.out} --baseline {input.baseline}"
        " --tolerance {params.tolerance} > {log} 2>&1"

