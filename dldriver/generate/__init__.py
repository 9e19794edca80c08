"""`dldriver generate`: write a workload's dataset in parallel and record it in its manifest.

pool.py is the worker pool, pipeline.py one worker's build-and-put of its files, command.py the entry
point that records what the workers wrote. Verifying a dataset is dldriver.dataset.verify's.
"""
from dldriver.generate.command import generate_dataset

__all__ = ["generate_dataset"]
