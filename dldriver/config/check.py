"""Value ranges and DLIO's cross-key rules (docs/dlio-facts.md §1), checked on a typed Workload.

Each rule names the key paths it reads; a rule is skipped when one of those keys already has a type or
enum problem, so a single mistake is reported once rather than echoed by every rule that reads it.
Rules that need the number of ranks live in plan.py.
"""
from __future__ import annotations

from operator import attrgetter

from dldriver.config.profiles import PROFILE_RANGES
from dldriver.config.uri import storage_problems

Problem = tuple[str, str]


def _at_least(low):
    return lambda v: v >= low, f"must be >= {low}"


def _off_or_at_least(off, low):
    return lambda v: v == off or v >= low, f"must be {off} (off) or >= {low}"


def _between(low, high):
    return lambda v: low <= v <= high, f"must be between {low} and {high}"


RANGES = {
    "model.model_size_bytes": _at_least(0),
    "model.num_layers": _off_or_at_least(-1, 1),
    "model.parallelism.tensor": _at_least(1),
    "model.parallelism.pipeline": _at_least(1),
    "model.parallelism.data": _off_or_at_least(-1, 1),
    "model.parallelism.zero_stage": _between(0, 3),
    "model.transformer.vocab_size": _at_least(1),
    "model.transformer.hidden_size": _at_least(1),
    "model.transformer.ffn_hidden_size": _at_least(1),
    "model.transformer.num_attention_heads": _at_least(1),
    "model.transformer.num_kv_heads": _at_least(1),
    "dataset.num_files_train": _at_least(0),
    "dataset.num_files_eval": _at_least(0),
    "dataset.num_samples_per_file": _at_least(1),
    "dataset.record_length_bytes": (lambda v: v > 0, "must be > 0"),
    "dataset.record_length_bytes_stdev": _at_least(0),
    "dataset.record_length_bytes_resize": _at_least(0),
    "dataset.num_subfolders_train": _at_least(0),
    "dataset.num_subfolders_eval": _at_least(0),
    "dataset.compression_level": _between(0, 9),
    "dataset.chunk_size": _at_least(0),
    "dataset.generation_buffer_size": _at_least(1),
    "dataset.hdf5.num_dset_per_record": _at_least(1),
    "reader.batch_size": _at_least(1),
    "reader.batch_size_eval": _at_least(1),
    "reader.read_threads": _at_least(0),
    "reader.computation_threads": _at_least(1),
    "reader.prefetch_size": _at_least(0),
    "reader.shuffle_size": _at_least(0),
    "reader.transfer_size": (lambda v: v is None or v >= 1, "must be >= 1"),
    "train.epochs": _at_least(1),
    "train.total_training_steps": _off_or_at_least(-1, 1),
    "train.seed": _between(0, 2**32 - 1),
    "evaluation.eval_after_epoch": _at_least(0),
    "evaluation.epochs_between_evals": _at_least(1),
    "checkpoint.checkpoint_after_epoch": _at_least(0),
    "checkpoint.epochs_between_checkpoints": _at_least(1),
    "checkpoint.steps_between_checkpoints": _off_or_at_least(-1, 1),
    "checkpoint.time_between_checkpoints": _off_or_at_least(-1, 0),
    "checkpoint.num_checkpoints_write": _off_or_at_least(-1, 0),
    "checkpoint.num_checkpoints_read": _off_or_at_least(-1, 0),
    "output.exclude_start_steps": _at_least(0),
    "output.exclude_end_steps": _at_least(0),
    "metric.au": (lambda v: 0 < v <= 1, "must be a fraction in (0, 1], e.g. 0.90"),
} | PROFILE_RANGES
KSM_RANGES = {
    "madv_mergeable_id": _at_least(0),
    "high_ram_trigger": _between(0, 100),
    "low_ram_exit": _between(0, 100),
    "await_time": _at_least(0),
}

RULES = []


def rule(*paths):
    """Register a cross-key rule reading `paths`; it yields (key path, problem) pairs."""
    def register(fn):
        RULES.append((paths, fn))
        return fn
    return register


def check_workload(workload, bad_paths) -> list[Problem]:
    """Range and cross-key problems, skipping checks that read a key in bad_paths."""
    problems = []
    for path, (ok, text) in RANGES.items():
        if not _touches(path, bad_paths):
            problems += _range(path, attrgetter(path)(workload), ok, text)
    ksm = workload.checkpoint.ksm
    if ksm is not None and not _touches("checkpoint.ksm", bad_paths):
        for name, (ok, text) in KSM_RANGES.items():
            problems += _range(f"checkpoint.ksm.{name}", getattr(ksm, name), ok, text)
    bad_paths = set(bad_paths) | {path for path, _ in problems}
    for paths, fn in RULES:
        if not any(_touches(p, bad_paths) for p in paths):
            problems += list(fn(workload))
    return problems


def _range(path, value, ok, text):
    return [] if ok(value) else [(path, f"{text}, got {value:g}" if isinstance(value, float) else f"{text}, got {value}")]


def _touches(path: str, bad_paths) -> bool:
    return any(b == path or b.startswith(path + ".") or path.startswith(b + ".") for b in bad_paths)


# Loader families: DLIO's own loaders belong to one framework; dl-driver's native and jax go with any.
LOADER_FRAMEWORKS = {
    "tensorflow": ("tensorflow",),
    "pytorch": ("pytorch",),
    "dali": ("tensorflow", "pytorch"),
    "native_dali": ("tensorflow", "pytorch"),
}


def _reads_data(w) -> bool:
    """Whether the run builds a loader: it trains or evaluates (checkpoint-only and datagen runs do not)."""
    return w.workflow.train or w.workflow.evaluation


def _loader_matters(w, *paths) -> bool:
    """Loader rules apply when a loader is built, or when the user wrote one of the keys they read."""
    return _reads_data(w) or any(p in w.written for p in paths)


@rule("framework", "reader.data_loader", "workflow.train", "workflow.evaluation")
def _framework_matches_loader(w):
    frameworks = LOADER_FRAMEWORKS.get(w.reader.data_loader)
    if not frameworks or w.framework in frameworks or not _loader_matters(w, "reader.data_loader"):
        return
    if "reader.data_loader" not in w.written:
        phase = "workflow.train" if w.workflow.train else "workflow.evaluation"
        yield (phase, f"needs reader.data_loader (none is set, and the default {w.reader.data_loader} "
                      f"loader does not go with framework {w.framework})")
        return
    yield ("reader.data_loader", f"the {w.reader.data_loader} loader needs framework "
                                 f"{' or '.join(frameworks)}, but framework is {w.framework}")


@rule("dataset.format", "reader.data_loader", "workflow.train", "workflow.evaluation")
def _tfrecord_needs_tf_reader(w):
    if not _loader_matters(w, "reader.data_loader", "dataset.format"):
        return
    if w.dataset.format == "tfrecord" and w.reader.data_loader == "pytorch":
        yield ("reader.data_loader", "the pytorch loader cannot read dataset.format tfrecord "
                                     "(as in DLIO); use tensorflow, dali, native or jax")


@rule("reader.data_loader_classname", "reader.data_loader_sampler")
def _custom_loader_needs_sampler(w):
    if w.reader.data_loader_classname and w.reader.data_loader_sampler is None:
        yield ("reader.data_loader_sampler", "a custom reader.data_loader_classname needs a sampler: iterative or index")


@rule("dataset.format", "dataset.record_dims")
def _images_are_2d(w):
    if w.dataset.format in ("jpeg", "png") and len(w.dataset.record_dims) > 2:
        yield ("dataset.record_dims", f"{w.dataset.format} format does not support more than 2 dimensions, "
                                      f"but got {len(w.dataset.record_dims)} dimensions")


@rule("dataset.record_dims", "dataset.record_length_bytes_stdev")
def _dims_are_fixed(w):
    if w.dataset.record_dims and w.dataset.record_length_bytes_stdev > 0:
        yield ("dataset.record_length_bytes_stdev", "cannot vary sample sizes when dataset.record_dims fixes the shape")


@rule("dataset.format", "dataset.record_dims", "dataset.hdf5.num_dset_per_record")
def _hdf5_split(w):
    dims, k = w.dataset.record_dims, w.dataset.hdf5.num_dset_per_record
    if w.dataset.format == "hdf5" and dims and dims[0] % k:
        yield ("dataset.hdf5.num_dset_per_record", f"{k} does not divide dataset.record_dims[0] = {dims[0]}")


@rule("workflow.train", "dataset.num_files_train")
def _training_needs_files(w):
    if w.workflow.train and w.dataset.num_files_train == 0:
        yield ("dataset.num_files_train", "must be >= 1 when workflow.train is true")


@rule("workflow.evaluation", "dataset.num_files_eval")
def _evaluation_needs_files(w):
    if w.workflow.evaluation and w.dataset.num_files_eval == 0:
        yield ("dataset.num_files_eval", "must be >= 1 when workflow.evaluation is true")


@rule("model.type", "model.num_layers", "model.parallelism.pipeline")
def _layers_fill_pipeline(w):
    layers, stages = w.model.num_layers, w.model.parallelism.pipeline
    if w.model.type == "transformer" and layers < 1:
        yield ("model.num_layers", "must be set (>= 1) when model.type is transformer")
    elif 0 < layers < stages:
        yield ("model.num_layers", f"{layers} layers cannot fill model.parallelism.pipeline = {stages} stages")


@rule("model.type", "model.transformer")
def _heads_divide(w):
    t = w.model.transformer
    if w.model.type == "transformer" and t.num_kv_heads > t.num_attention_heads:
        yield ("model.transformer.num_kv_heads",
               f"{t.num_kv_heads} exceeds model.transformer.num_attention_heads = {t.num_attention_heads}")


@rule("model.parallelism.pipeline", "model.parallelism.zero_stage")
def _zero3_without_pipeline(w):
    if w.model.parallelism.pipeline > 1 and w.model.parallelism.zero_stage == 3:
        yield ("model.parallelism.zero_stage", "ZeRO stage 3 cannot be combined with model.parallelism.pipeline > 1")


@rule("model.parallelism.data", "checkpoint.mode")
def _data_parallelism_only_in_subset(w):
    data, mode = w.model.parallelism.data, w.checkpoint.mode
    if mode == "default" and data != -1:
        yield ("model.parallelism.data", "may only be set with checkpoint.mode subset; "
                                         "in default mode it is world / (tensor * pipeline)")
    if mode == "subset" and data == -1:
        yield ("model.parallelism.data", "must be set (>= 1) with checkpoint.mode subset")


@rule("checkpoint.num_checkpoints_read", "checkpoint.num_checkpoints_write")
def _reads_follow_writes(w):
    # num_checkpoints_write 0 with reads: the read phase of MLPerf Storage, which reads checkpoints already
    # in checkpoint_folder (written by an earlier run).
    reads, writes = w.checkpoint.num_checkpoints_read, w.checkpoint.num_checkpoints_write
    if writes > 0 and reads > writes:
        yield ("checkpoint.num_checkpoints_read", f"{reads} reads exceed the {writes} checkpoints written "
                                                  "(checkpoint.num_checkpoints_write)")


@rule("workflow.train", "workflow.checkpoint", "workflow.generate_data",
      "checkpoint.num_checkpoints_write", "checkpoint.num_checkpoints_read")
def _checkpoint_only_writes(w):
    # With generate_data and no training the run is MLPerf's datagen: DLIO writes the data, no checkpoints.
    wf, ckpt = w.workflow, w.checkpoint
    if not wf.train and wf.checkpoint and not wf.generate_data and ckpt.num_checkpoints_write < 1 \
            and ckpt.num_checkpoints_read < 1:
        yield ("checkpoint.num_checkpoints_write", "must be >= 1 in checkpoint-only mode "
                                                   "(workflow.train false, workflow.checkpoint true), or 0 with "
                                                   "checkpoint.num_checkpoints_read >= 1 to read existing ones")


@rule("checkpoint.ksm", "checkpoint.randomize_tensor")
def _ksm_needs_equal_pages(w):
    if w.checkpoint.ksm is not None and w.checkpoint.randomize_tensor:
        yield ("checkpoint.ksm", "needs checkpoint.randomize_tensor false (random tensors leave no pages to merge)")


@rule("storage", "dataset.data_folder", "checkpoint.checkpoint_folder")
def _storage_resolves(w):
    return storage_problems(w)

