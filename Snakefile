# dl-driver's benchmark matrix: validate -> generate -> run / checkpoint -> aggregate.
# Each stage calls the `dldriver` command line; the package knows nothing of Snakemake.
#   snakemake                      the default matrix on this machine (profiles/default)
#   snakemake --profile slurm      the same matrix as Slurm jobs (scripts/install-profiles.sh)

from snakemake.utils import min_version, validate

min_version("9")


# The default matrix, unless --configfile names another: Snakemake would merge the two, mixing
# their workloads and backends.
if not workflow.overwrite_configfiles:

    configfile: "configs/config.yaml"


include: "rules/config_check.smk"


check_schema(config, f"{workflow.basedir}/configs/schemas/config.schema.yaml")
validate(config, "configs/schemas/config.schema.yaml")


# Jobs find `dldriver` through PATH (rules/common.smk puts the running interpreter's folder first).
envvars:
    "PATH",


include: "rules/common.smk"
include: "rules/validate.smk"
include: "rules/generate.smk"
include: "rules/run.smk"
include: "rules/checkpoint.smk"
include: "rules/aggregate.smk"
include: "rules/mlperf.smk"


rule all:
    input:
        plans(),
        REPORT_FILES,
        search_results(),
        search_verdicts(),
        f"{REPORT}/verdict.ok" if config["baseline"] else [],
    default_target: True


onstart:
    refuse_local_hosts(workflow.executor_plugin.name)
    start_services()


onsuccess:
    stop_services()
    print_report_locations()


onerror:
    stop_services()
    print_report_locations()
