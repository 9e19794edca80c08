"""The workload model: one plain dataclass per DLIO config section, with DLIO's *code* defaults.

Field names are DLIO's current (HEAD) spellings; the loader maps the 2.0.0 spellings onto them. The
dataset and storage sections are DatasetSection and StorageSection: Dataset (dldriver.dataset.opening)
and Storage (dldriver.storage) are the runtime objects.
Enum values allowed per field live in ENUMS, keyed by the dotted key path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from dldriver.config.profiles import PROFILE_ENUMS, JaxProfile, PyTorchProfile, TensorFlowProfile
from dldriver.config.timespec import TimeSpec


@dataclass
class Parallelism:
    tensor: int = 1
    pipeline: int = 1
    data: int = -1
    zero_stage: int = 0

    @property
    def model_parallel(self) -> int:
        """tensor x pipeline: the ranks one copy of the model spans (world sizes are multiples of it)."""
        return self.tensor * self.pipeline


@dataclass
class Transformer:
    vocab_size: int = 32000
    hidden_size: int = 2048
    ffn_hidden_size: int = 8192
    num_attention_heads: int = 32
    num_kv_heads: int = 8


@dataclass
class Model:
    name: str = "default"
    type: Optional[str] = None
    model_size_bytes: int = 10240
    model_datatype: str = "fp16"
    optimizer_datatype: str = "fp32"
    optimization_groups: list = field(default_factory=list)
    num_layers: int = -1
    layer_parameters: list = field(default_factory=list)
    parallelism: Parallelism = field(default_factory=Parallelism)
    transformer: Transformer = field(default_factory=Transformer)


@dataclass
class Workflow:
    generate_data: bool = False
    train: bool = True
    evaluation: bool = False
    checkpoint: bool = False
    profiling: bool = False
    debug: bool = False
    query: Optional[str] = None


@dataclass
class StorageSection:
    storage_type: str = "local_fs"
    storage_root: str = "./"
    storage_options: Optional[dict] = None


@dataclass
class Hdf5Options:
    num_dset_per_record: int = 1
    chunk_dims: list = field(default_factory=list)
    max_shape: list = field(default_factory=list)


@dataclass
class DatasetSection:
    data_folder: str = "./data/"
    format: str = "tfrecord"
    num_files_train: int = 8
    num_files_eval: int = 0
    num_samples_per_file: int = 1
    record_length_bytes: float = 65536
    record_length_bytes_stdev: float = 0
    record_length_bytes_resize: float = 0
    record_dims: list = field(default_factory=list)
    record_element_type: str = "uint8"
    num_subfolders_train: int = 0
    num_subfolders_eval: int = 0
    file_prefix: str = "img"
    compression: str = "none"
    compression_level: int = 4
    enable_chunking: bool = False
    chunk_size: int = 0
    keep_files: bool = True
    generation_buffer_size: int = 2 * 1024**3
    hdf5: Hdf5Options = field(default_factory=Hdf5Options)


@dataclass
class Reader:
    data_loader: str = "tensorflow"
    data_loader_classname: Optional[str] = None
    data_loader_sampler: Optional[str] = None
    reader_classname: Optional[str] = None
    batch_size: int = 1
    batch_size_eval: int = 1
    read_threads: int = 1
    computation_threads: int = 1
    prefetch_size: int = 2
    file_shuffle: str = "off"
    sample_shuffle: str = "off"
    shuffle_size: int = 1024
    read_type: str = "on_demand"
    file_access: str = "multi"
    transfer_size: Optional[int] = None
    preprocess_time: TimeSpec = field(default_factory=TimeSpec)
    dont_use_mmap: bool = False
    multiprocessing_context: str = "fork"
    pin_memory: bool = True
    odirect: bool = False
    transformed_record_dims: list = field(default_factory=list)
    transformed_record_element_type: str = "uint8"


@dataclass
class Train:
    epochs: int = 1
    computation_time: TimeSpec = field(default_factory=TimeSpec)
    total_training_steps: int = -1
    seed_change_epoch: bool = True
    seed: int = 123


@dataclass
class Evaluation:
    eval_time: TimeSpec = field(default_factory=TimeSpec)
    eval_after_epoch: int = 1
    epochs_between_evals: int = 1


@dataclass
class Ksm:
    madv_mergeable_id: int = 12
    high_ram_trigger: float = 30.0
    low_ram_exit: float = 15.0
    await_time: int = 200


@dataclass
class Checkpoint:
    checkpoint_folder: str = "./checkpoints/"
    checkpoint_after_epoch: int = 1
    epochs_between_checkpoints: int = 1
    steps_between_checkpoints: int = -1
    type: str = "rank_zero"
    fsync: bool = False
    time_between_checkpoints: float = -1
    num_checkpoints_write: int = -1
    num_checkpoints_read: int = -1
    recovery_rank_shift: bool = False
    rank_sync: bool = False
    mode: str = "default"
    randomize_tensor: bool = True
    ksm: Optional[Ksm] = None
    checkpoint_mechanism_classname: Optional[str] = None


@dataclass
class Output:
    folder: Optional[str] = None
    log_file: str = "dlio.log"
    exclude_start_steps: int = 1
    exclude_end_steps: int = 0


@dataclass
class Profiling:
    profiler: str = "iostat"
    iostat_devices: list = field(default_factory=list)


@dataclass
class Metric:
    au: float = 0.90


@dataclass
class Workload:
    model: Model = field(default_factory=Model)
    framework: str = "tensorflow"
    workflow: Workflow = field(default_factory=Workflow)
    storage: StorageSection = field(default_factory=StorageSection)
    dataset: DatasetSection = field(default_factory=DatasetSection)
    reader: Reader = field(default_factory=Reader)
    train: Train = field(default_factory=Train)
    evaluation: Evaluation = field(default_factory=Evaluation)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    output: Output = field(default_factory=Output)
    profiling: Profiling = field(default_factory=Profiling)
    metric: Metric = field(default_factory=Metric)
    # dl-driver's framework profiles (config/profiles.py); `framework_profiles:` folds into these.
    pytorch_config: PyTorchProfile = field(default_factory=PyTorchProfile)
    tensorflow_config: TensorFlowProfile = field(default_factory=TensorFlowProfile)
    jax_config: JaxProfile = field(default_factory=JaxProfile)
    # Where the workload was read from: reported, but not a config key, so not part of the config hash.
    source: Optional[str] = field(default=None, compare=False, metadata={"internal": True})
    # The key paths the file and overrides gave (HEAD spellings): rules about keys a run does not use
    # apply only to keys the user wrote.
    written: frozenset = field(default=frozenset(), compare=False, metadata={"internal": True})
    # --dlio-defaults: the DLIO generation whose defaults filled the file (config/generations.py); it also
    # picks the checkpoint layout. Not a DLIO key, so not in the resolved config (config_hash adds it).
    dlio_defaults: str = field(default="head", metadata={"internal": True})
    # `++hydra.output_subdir=NAME`: the run folder's subfolder for the resolved config (None: not written).
    output_subdir: Optional[str] = field(default=None, compare=False, metadata={"internal": True})
    # HEAD key prefix -> the spelling the file or an override used (`pytorch_config` ->
    # `framework_profiles.pytorch`), and the key paths overrides set, as written: where a value came from.
    spellings: dict = field(default_factory=dict, compare=False, metadata={"internal": True})
    overridden: frozenset = field(default=frozenset(), compare=False, metadata={"internal": True})


SHUFFLE_MODES = ("off", "seed", "random")
# DLIO's model_datatype / optimizer_datatype names and the bytes of one element of each.
DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4, "fp64": 8, "int8": 1, "uint8": 1}
DTYPES = tuple(DTYPE_BYTES)

# Allowed values per key path. data_loader adds dl-driver's own `native` and `jax` to DLIO's list.
ENUMS: dict[str, tuple[Any, ...]] = {
    "framework": ("tensorflow", "pytorch", "jax", "native"),
    "model.model_datatype": DTYPES,
    "model.optimizer_datatype": DTYPES,
    "storage.storage_type": ("local_fs", "s3", "azure", "direct", "aistore", "parallel_fs"),
    "dataset.format": ("tfrecord", "hdf5", "csv", "npz", "npy", "jpeg", "png",
                       "indexed_binary", "mmap_indexed_binary", "synthetic", "parquet"),
    "dataset.compression": ("none", "gzip", "lzf", "bz2", "zip", "xz"),
    "reader.data_loader": ("tensorflow", "pytorch", "dali", "native_dali", "synthetic", "native", "jax"),
    "reader.data_loader_sampler": (None, "iterative", "index"),
    "reader.file_shuffle": SHUFFLE_MODES,
    "reader.sample_shuffle": SHUFFLE_MODES,
    "reader.read_type": ("on_demand", "memory"),
    "reader.file_access": ("multi", "shared", "mpio", "posix"),
    "reader.multiprocessing_context": ("fork", "spawn", "forkserver"),
    "checkpoint.type": ("rank_zero", "all_ranks"),
    "checkpoint.mode": ("default", "subset"),
    "profiling.profiler": ("none", "iostat", "darshan", "tensorboard"),
} | PROFILE_ENUMS
