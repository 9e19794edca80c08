"""`dldriver generate`: write a workload's dataset in parallel and record it in its manifest."""
from dldriver.generate.command import dataset_manifest, generate_dataset, verify_dataset

__all__ = ["dataset_manifest", "generate_dataset", "verify_dataset"]
