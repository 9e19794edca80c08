"""Print the manifest of a workload's dataset (manifest.json at the dataset root) to stdout.

The generate rule copies it into the results folder so that Snakemake has a local file that proves
the dataset is complete, whatever backend holds the data.
Usage: python scripts/manifest.py WORKLOAD.yaml [OVERRIDE ...]
"""
import json
import sys

from dldriver.config import load_workload
from dldriver.config.uri import dataset_uri, storage_options
from dldriver.errors import DlDriverError
from dldriver.storage import open_storage


def main(argv):
    try:
        workload = load_workload(argv[0], argv[1:])
        storage = open_storage(dataset_uri(workload), storage_options(workload))
        manifest = json.loads(storage.get("manifest.json"))
    except DlDriverError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    json.dump(manifest, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
