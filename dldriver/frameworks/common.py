"""What every framework's dataset is built from: a workload (from a YAML path, a dict, a Workload or a
dataset URI), its checked dataset, this process's rank, and the shared sampler and sample source.

Nothing here imports a framework; torch.distributed is asked for the rank only when torch is already
imported (a user who trains with torch has imported it).
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from dldriver.config import load_workload
from dldriver.config.loader import load_workload_mapping
from dldriver.config.model import Workload
from dldriver.config.profiles import ResolvedProfile, resolve_profile
from dldriver.config.resolved import resolved_dict
from dldriver.config.uri import locations
from dldriver.dataset.manifest import load_manifest
from dldriver.dataset.opening import open_dataset
from dldriver.dataset.sampler import Sampler, fresh_entropy
from dldriver.dataset.source import SampleSource, open_source
from dldriver.engine.ranks import launcher_pair, launcher_world
from dldriver.errors import ConfigError, DlDriverError
from dldriver.storage import open_storage
from dldriver.uri import split_uri

SPLITS = {"train": "train", "valid": "valid", "eval": "valid"}


def load_config(config, overrides=()) -> Workload:
    """A Workload from a YAML path, a dict (as the YAML would give), or a Workload, plus overrides in the
    CLI's grammar (`reader.batch_size=8`, `++workload.train.epochs=2`)."""
    overrides = [overrides] if isinstance(overrides, str) else list(overrides)
    if isinstance(config, Workload):
        if not overrides:
            return config
        again = load_workload_mapping(resolved_dict(config), overrides, config.source or "<workload>")
        # The resolved dict spells every key as HEAD does: where the given Workload's keys were written stays.
        again.spellings = config.spellings | again.spellings
        again.overridden = config.overridden | again.overridden
        return again
    if isinstance(config, dict):
        return load_workload_mapping(config, overrides)
    if isinstance(config, (str, os.PathLike)):
        return load_workload(str(Path(config)), overrides)
    raise ConfigError(f"config: expected a YAML path, a dict or a Workload, got {type(config).__name__}")


def uri_config(uri: str, format: str, **sections) -> dict:
    """A workload dict for a dataset URI and format with DLIO's defaults; when the URI holds a manifest
    (a dataset `dldriver generate` wrote), its dataset keys, so the manifest check passes."""
    if not isinstance(uri, (str, os.PathLike)) or not str(uri).strip():
        raise ConfigError(f"uri: expected a dataset URI or path, got {uri!r}")
    uri = str(uri)
    scheme, _ = split_uri(uri)
    folder = uri if scheme else os.path.abspath(uri)
    doc: dict = {"dataset": {"data_folder": folder, "format": format}}
    storage = open_storage(folder)
    manifest = load_manifest(storage)
    if manifest is not None:
        stored = dict(manifest.get("config", {}).get("dataset", {}))
        if format is not None and stored.get("format") not in (None, format):
            raise ConfigError(f"{uri}: the dataset is {stored.get('format')}, not {format} (its manifest says)")
        stored.update(data_folder=folder, num_files_train=manifest["num_files_train"],
                      num_files_eval=manifest["num_files_eval"])
        doc = {"dataset": stored, "train": {"seed": manifest["config"].get("seed", 123)}}
        # The manifest's keys are checked here, so a damaged one is named (not the caller's mapping).
        load_workload_mapping(doc, (), f"{storage.key_uri('manifest.json')}: config")
    elif format is None:
        raise ConfigError(f"{uri}: no manifest.json, so the format must be given (format=...)")
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    return doc


def torch_world() -> Optional[tuple[int, int]]:
    """(rank, world size) of an initialised torch.distributed process group, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def env_world() -> Optional[tuple[int, int]]:
    """(rank, world) from torchrun's RANK/WORLD_SIZE, or mpiexec's/srun's variables."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return launcher_pair("RANK", "WORLD_SIZE")
    return launcher_world()


def resolve_rank(rank: Optional[int], world_size: Optional[int], distributed: bool = True) -> tuple[int, int]:
    """(rank, world size): the arguments, else torch.distributed, else the launcher's environment, else
    (0, 1). distributed=False ignores the last two (every process reads the whole dataset)."""
    if rank is not None or world_size is not None:
        if rank is None or world_size is None:
            raise DlDriverError("rank and world_size: give both or neither")
        for name, value in (("rank", rank), ("world_size", world_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise DlDriverError(f"{name}: expected a whole number, got {value!r}")
        if world_size < 1:
            raise DlDriverError(f"world_size: must be at least 1, got {world_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise DlDriverError(f"rank {rank} is outside 0..{world_size - 1} (world_size {world_size})")
        return rank, world_size
    if distributed:
        found = torch_world() or env_world()
        if found is not None:
            return found
    return 0, 1


def shared_entropy(world: int, entropy: Optional[int]) -> Optional[int]:
    """The one random value `random` shuffling needs on every rank: given, or broadcast from rank 0
    through torch.distributed when it is initialised."""
    if entropy is not None or world == 1:
        return entropy
    if torch_world() is None:
        raise DlDriverError(f"reader.file_shuffle/sample_shuffle 'random' over {world} ranks needs one shared "
                            "value: pass entropy=<the same int on every rank>, initialise torch.distributed, "
                            "or use 'seed'")
    dist = sys.modules["torch.distributed"]
    box = [fresh_entropy() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@dataclass
class Reading:
    """One rank's view of one split: the workload, its framework profile, sampler and sample source."""

    workload: Workload
    profile: ResolvedProfile
    split: str
    rank: int
    world_size: int
    sampler: Sampler
    source: SampleSource
    uri: str


def open_reading(config, overrides=(), framework: str = "pytorch", split: str = "train",
                 rank: Optional[int] = None, world_size: Optional[int] = None,
                 entropy: Optional[int] = None, **profile) -> Reading:
    """Load the config, apply the profile (and `profile` keyword overrides of its keys), check the
    dataset against its manifest, and build the sampler and source of this rank. Raises ConfigError,
    DatasetError or StorageError here, where the user calls."""
    if split not in SPLITS:
        raise DlDriverError(f"split: {split!r} is not one of train, valid")
    split = SPLITS[split]
    workload = load_config(config, overrides)
    resolved = resolve_profile(workload, framework)
    if profile:
        key = {"pytorch": "pytorch_config", "tensorflow": "tensorflow_config", "jax": "jax_config"}[framework]
        current = {k: v for k, v in dataclasses.asdict(getattr(workload, key)).items() if v is not None}
        given = load_workload_mapping(resolved_dict(workload) | {key: current | profile}, (),
                                      workload.source or "<workload>")
        given.spellings, given.overridden = workload.spellings, workload.overridden
        # The keyword arguments' origin is the call; every other key keeps the file's or override's.
        origins = {k: f"argument {k}" if k in profile else where for k, where in resolved.origins.items()}
        workload, resolved = given, ResolvedProfile(framework, resolve_profile(given, framework).values, origins)
    distributed = resolved.values.get("distributed", True)
    rank, world = resolve_rank(rank, world_size, distributed)
    where = locations(workload)
    dataset = open_dataset(workload, where.dataset, where.options, need_eval=split == "valid")
    files = dataset.train_files if split == "train" else dataset.eval_files
    if not files:
        raise DlDriverError(f"{dataset.uri}: split {split} has no files (dataset.num_files_"
                            f"{'train' if split == 'train' else 'eval'} is 0)")
    sampler = _sampler(workload, resolved, split, rank, world, entropy)
    if sampler.drop_last and sampler.steps_per_epoch == 0:   # as `dldriver run` refuses it
        where = resolved.origins.get("batch_size", "reader.batch_size") if split == "train" else \
            "reader.batch_size_eval"
        raise ConfigError(f"{where}: {sampler.total_samples} {split} samples give no full batch of "
                          f"{sampler.batch_size} on each of {world} rank(s) (world_size {world})")
    source = open_source(files, dataset.open_storage, workload.dataset.format, workload.reader,
                         workload.train.seed)
    return Reading(workload, resolved, split, rank, world, sampler, source, dataset.uri)


def _sampler(workload, profile: ResolvedProfile, split: str, rank: int, world: int, entropy) -> Sampler:
    rd, ds = workload.reader, workload.dataset
    file_shuffle, sample_shuffle = rd.file_shuffle, rd.sample_shuffle
    shuffle = profile.values.get("shuffle")
    if shuffle is False:
        file_shuffle = sample_shuffle = "off"
    elif shuffle is True and file_shuffle == sample_shuffle == "off":
        file_shuffle = sample_shuffle = "seed"
    if profile.framework == "tensorflow" and profile.values["shuffle_buffer_size"] > 0:
        sample_shuffle = "off"  # tf.data's shuffle buffer reorders instead, as DLIO's loader does
    if "random" in (file_shuffle, sample_shuffle):
        entropy = shared_entropy(world, entropy)
    files = ds.num_files_train if split == "train" else ds.num_files_eval
    batch = profile.batch_size if split == "train" else rd.batch_size_eval
    drop_last = profile.values.get("drop_last", profile.values.get("drop_remainder", True))
    return Sampler(files, ds.num_samples_per_file, world, rank, batch, file_shuffle, sample_shuffle,
                   profile.seed, workload.train.seed_change_epoch, drop_last, entropy)


class SharedCounts:
    """(bytes, samples) read, counted by every loader worker into one shared array, so the main
    process knows the true bytes its workers fetched. Shared with workers as they start (fork or spawn);
    a plain pickle of its owner starts its own count."""

    def __init__(self):
        self._array = multiprocessing.get_context("spawn").Array("q", 2)

    def add(self, nbytes: int, samples: int) -> None:
        # The raw ctypes array under the one lock (the synchronized wrapper's items would take it again
        # for each of the four accesses): 0.6 us a batch instead of 2.7.
        with self._array.get_lock():
            counts = self._array.get_obj()
            counts[0] += nbytes
            counts[1] += samples

    def take(self) -> tuple[int, int]:
        """(bytes, samples) since the last take."""
        with self._array.get_lock():
            counts = (self._array[0], self._array[1])
            self._array[0] = self._array[1] = 0
        return counts

    def __getstate__(self):
        # Shared with a worker being started (it inherits the array); a plain pickle counts on its own.
        from multiprocessing import context

        return {"_array": self._array if context.get_spawning_popen() is not None else None}

    def __setstate__(self, state):
        self._array = state["_array"] or multiprocessing.get_context("spawn").Array("q", 2)


class SharedEpoch:
    """The epoch number, shared with loader workers as they start, so that `set_epoch` in the main
    process reaches persistent workers too (a plain pickle keeps the value, not the sharing)."""

    def __init__(self, epoch: int = 1):
        self._value = multiprocessing.get_context("spawn").Value("q", epoch, lock=False)
        self._plain = epoch

    @property
    def value(self) -> int:
        return self._value.value if self._value is not None else self._plain

    @value.setter
    def value(self, epoch: int) -> None:
        if self._value is not None:
            self._value.value = epoch
        self._plain = epoch

    def __getstate__(self):
        from multiprocessing import context

        spawning = context.get_spawning_popen() is not None
        return {"_value": self._value if spawning else None, "_plain": self.value}


class FrameworkDataset:
    """What every framework's dataset shares: the reading (workload, profile, sampler, source), the
    epoch (shared with loader workers) and the true-bytes counters. Subclasses set `framework`."""

    framework = ""

    def _setup(self, config, overrides, split, rank, world_size, entropy, profile) -> None:
        self.reading: Reading = open_reading(config, overrides, self.framework, split, rank, world_size,
                                             entropy, **profile)
        self.counts = SharedCounts()
        self._epoch = SharedEpoch(1)

    @classmethod
    def from_config(cls, config, overrides=(), **kwargs):
        """The dataset of a workload: a YAML path, a dict or a Workload, plus overrides."""
        return cls(config, overrides, **kwargs)

    @classmethod
    def from_uri(cls, uri: str, format: Optional[str] = None, overrides=(), **kwargs):
        """The dataset at a URI (a path, file://, direct://, s3://, az://) with DLIO's defaults; its
        manifest gives the layout when `dldriver generate` wrote it, else give `format`."""
        return cls(uri_config(uri, format), overrides, **kwargs)

    @property
    def workload(self):
        return self.reading.workload

    @property
    def profile(self):
        """The resolved framework profile (values and where each came from)."""
        return self.reading.profile

    @property
    def rank(self) -> int:
        return self.reading.rank

    @property
    def world_size(self) -> int:
        return self.reading.world_size

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose shard and order the next pass reads (as DistributedSampler.set_epoch)."""
        self._epoch.value = int(epoch)

    def take_counts(self) -> tuple[int, int]:
        """(bytes really fetched, samples) by this dataset in every worker since the last call."""
        return self.counts.take()
