"""Every shipped workload (configs/workloads/, DLIO's files verbatim) loads strictly and resolves to DLIO's values."""
import hashlib
from pathlib import Path

import pytest

from dldriver.config import config_hash, derive_plan, load_workload, resolved_dict
from dldriver.errors import ConfigError

WORKLOADS = Path(__file__).parents[1] / "configs" / "workloads"
NAMES = ["default", "unet3d_a100", "unet3d_h100", "unet3d_v100", "unet3d_a100_s3", "unet3d_h100_s3",
         "unet3d_v100_s3", "resnet50_a100", "resnet50_h100", "resnet50_v100", "resnet50_tf", "cosmoflow_a100",
         "cosmoflow_h100", "cosmoflow_v100", "bert_v100", "dlrm", "megatron_deepspeed_LLNL", "llama_7b",
         "llama_7b_zero3", "llama_8b_zero3", "llama_70b", "llama_70b_zero3", "llama_405b", "llama_1t"]
# What DLIO ships with a copy-paste slip, kept verbatim: llama_1t says model.name llama_405b and
# workflow.train True (with no reader), llama_70b_zero3 says llama_70b.
SHIPPED_NAME = {"llama_70b_zero3": "llama_70b", "llama_1t": "llama_405b"}
# What it takes to run a file DLIO ships unrunnable: llama_1t is the checkpoint workload the others are.
OVERRIDES = {"llama_1t": ["++workload.workflow.train=False"]}
UPSTREAM = Path(__file__).parent / "data" / "upstream" / "dlio-main"
# The smallest world each workload accepts: DLIO requires ranks to be a multiple of tensor * pipeline.
MIN_RANKS = {"megatron_deepspeed_LLNL": 32, "llama_70b": 32, "llama_70b_zero3": 8, "llama_405b": 256,
             "llama_1t": 512}

# name: (framework/loader, format, files train, files eval, samples/file, record bytes, stdev, resize,
#        batch, read_threads, computation_time, epochs, metric.au)
TRAINING = {
    "default": ("pytorch", "npz", 64, 8, 1, 4096, 0, 0, 4, 1, 1.0, 10, 0.90),
    "unet3d_a100": ("pytorch", "npz", 168, 0, 1, 146600628, 68341808, 2097152, 7, 4, 0.636, 5, 0.90),
    "unet3d_h100": ("pytorch", "npz", 168, 0, 1, 146600628, 68341808, 2097152, 7, 4, 0.323, 5, 0.90),
    "unet3d_v100": ("pytorch", "npz", 168, 0, 1, 146600628, 68341808, 2097152, 4, 4, 1.3604, 5, 0.90),
    "unet3d_a100_s3": ("pytorch", "npz", 168, 0, 1, 146600628, 0, 2097152, 7, 4, 0.636, 5, 0.90),
    "unet3d_h100_s3": ("pytorch", "npz", 168, 0, 1, 146600628, 0, 2097152, 7, 4, 0.323, 7, 0.90),
    "unet3d_v100_s3": ("pytorch", "npy", 168, 0, 1, 146600628, 0, 2097152, 4, 4, 1.3604, 5, 0.90),
    "resnet50_a100": ("tensorflow", "tfrecord", 1024, 0, 1251, 114660.07, 0, 150528, 400, 8, 0.435, 5, 0.90),
    "resnet50_h100": ("tensorflow", "tfrecord", 1024, 0, 1251, 114660.07, 0, 150528, 400, 8, 0.224, 5, 0.90),
    "resnet50_v100": ("tensorflow", "tfrecord", 1024, 0, 1251, 114660.07, 0, 150528, 64, 8, 0.195, 5, 0.90),
    "resnet50_tf": ("tensorflow", "tfrecord", 1024, 0, 1251, 114660.07, 0, 150528, 64, 8, 0.098, 1, 0.90),
    "cosmoflow_a100": ("tensorflow", "tfrecord", 524288, 0, 1, 2828486, 71311, 0, 1, 4, 0.00551, 5, 0.70),
    "cosmoflow_h100": ("tensorflow", "tfrecord", 524288, 0, 1, 2828486, 71311, 0, 1, 4, 0.00350, 5, 0.70),
    "cosmoflow_v100": ("tensorflow", "tfrecord", 524288, 0, 1, 2828486, 71311, 0, 1, 4, 0.00936, 5, 0.90),
    "bert_v100": ("tensorflow", "tfrecord", 500, 0, 313532, 2500, 0, 0, 48, 1, 0.968, 1, 0.90),
    "dlrm": ("pytorch", "indexed_binary", 1, 1, 1024, 671088640, 0, 0, 1, 1, 0.064296, 1, 0.90),
    "megatron_deepspeed_LLNL": ("pytorch", "mmap_indexed_binary", 1, 0, 277203535, 2048, 0, 0, 16, 1, 2.44, 3,
                                0.90),
}
# name: (layers, hidden, ffn, heads, kv heads, vocab, tensor, pipeline, zero stage)
LLAMA = {
    "llama_7b": (32, 4096, 11008, 32, 32, 32000, 1, 1, 1),
    "llama_7b_zero3": (32, 4096, 11008, 32, 32, 32000, 1, 1, 3),
    "llama_8b_zero3": (32, 4096, 14336, 32, 8, 128256, 1, 1, 3),
    "llama_70b": (80, 8192, 28672, 128, 8, 128256, 8, 4, 1),
    "llama_70b_zero3": (80, 8192, 28672, 128, 8, 128256, 8, 1, 3),
    "llama_405b": (126, 16384, 53248, 128, 8, 128256, 8, 32, 1),
    "llama_1t": (128, 25872, 98304, 192, 32, 128256, 8, 64, 1),
}


def load(name, *overrides):
    return load_workload(WORKLOADS / f"{name}.yaml", OVERRIDES.get(name, []) + list(overrides))


def test_the_set_is_complete():
    assert sorted(p.stem for p in WORKLOADS.glob("*.yaml")) == sorted(NAMES)
    assert set(TRAINING) | set(LLAMA) == set(NAMES)


def test_shipped_files_are_dlios_byte_for_byte():
    recorded = dict(line.split()[::-1] for line in (UPSTREAM / "SHA256SUMS").read_text().splitlines())
    for name in NAMES:
        assert hashlib.sha256((WORKLOADS / f"{name}.yaml").read_bytes()).hexdigest() == recorded[f"{name}.yaml"]


def test_llama_1t_as_shipped_names_the_missing_loader():
    with pytest.raises(ConfigError, match=r"workflow.train: needs reader.data_loader"):
        load_workload(WORKLOADS / "llama_1t.yaml")


@pytest.mark.parametrize("name", NAMES)
def test_workload_validates_with_a_plan(name):
    workload = load(name)
    plan = derive_plan(workload, ranks=MIN_RANKS.get(name, 1))
    assert workload.source.endswith(f"{name}.yaml")
    assert len(config_hash(workload)) == 16
    assert SHIPPED_NAME.get(name, name).startswith(resolved_dict(workload)["model"]["name"])
    if workload.workflow.train:
        assert plan.steps_per_epoch > 0


@pytest.mark.parametrize("name", TRAINING)
def test_training_values_are_dlios(name):
    fw, fmt, files, files_eval, nspf, record, stdev, resize, batch, threads, ct, epochs, au = TRAINING[name]
    w = load(name)
    assert (w.framework, w.reader.data_loader, w.dataset.format) == (fw, fw, fmt)
    assert (w.dataset.num_files_train, w.dataset.num_files_eval, w.dataset.num_samples_per_file) == (
        files, files_eval, nspf)
    assert (w.dataset.record_length_bytes, w.dataset.record_length_bytes_stdev,
            w.dataset.record_length_bytes_resize) == (record, stdev, resize)
    assert (w.reader.batch_size, w.reader.read_threads, w.train.epochs, w.metric.au) == (batch, threads, epochs, au)
    assert w.train.computation_time.expected() == ct


def test_details_that_matter():
    unet = load("unet3d_a100")
    # model.model_size (ignored by DLIO HEAD) is honoured as model_size_bytes.
    assert unet.model.model_size_bytes == 499153191
    assert (unet.reader.file_shuffle, unet.reader.sample_shuffle) == ("seed", "seed")
    assert (unet.checkpoint.checkpoint_after_epoch, unet.checkpoint.epochs_between_checkpoints) == (5, 2)
    s3 = load("unet3d_h100_s3")
    assert (s3.storage.storage_type, s3.storage.storage_root, s3.workflow.generate_data) == (
        "s3", "s3pytorchconnector", True)
    assert s3.storage.storage_options["region"] == "us-east-1"
    assert load("resnet50_v100").reader.batch_size_eval == 128
    assert load("resnet50_a100").reader.computation_threads == 8
    cosmo = load("cosmoflow_a100")
    assert (cosmo.reader.sample_shuffle, cosmo.reader.shuffle_size) == ("seed", 2)
    assert load("cosmoflow_v100").reader.sample_shuffle == "off"
    bert = load("bert_v100")
    assert (bert.model.model_size_bytes, bert.train.total_training_steps) == (4034713312, 1000)
    assert (bert.checkpoint.steps_between_checkpoints, bert.dataset.file_prefix) == (250, "part")
    assert (bert.reader.transfer_size, bert.train.seed_change_epoch) == (262144, False)
    default = load("default")
    assert (default.workflow.evaluation, default.evaluation.eval_time.expected()) == (True, 0.5)
    assert (default.dataset.num_subfolders_train, default.dataset.num_subfolders_eval) == (2, 2)
    assert load("dlrm").reader.sample_shuffle == "random"
    mega = load("megatron_deepspeed_LLNL")
    assert mega.model.optimization_groups == [1009254400, 865075200, 793600]
    assert mega.model.layer_parameters == [52583936, 209715200]
    p = mega.model.parallelism
    assert (mega.model.num_layers, p.tensor, p.pipeline, p.zero_stage) == (40, 4, 8, 1)
    assert (mega.train.total_training_steps, mega.checkpoint.steps_between_checkpoints) == (1000, 1000)
    assert mega.checkpoint.type == "all_ranks"


@pytest.mark.parametrize("name", LLAMA)
def test_llama_values_are_dlios(name):
    layers, hidden, ffn, heads, kv, vocab, tp, pp, zero = LLAMA[name]
    w = load(name)
    t, p, c = w.model.transformer, w.model.parallelism, w.checkpoint
    assert (w.model.name, w.model.type, w.model.num_layers) == (SHIPPED_NAME.get(name, name), "transformer", layers)
    assert (t.hidden_size, t.ffn_hidden_size, t.num_attention_heads, t.num_kv_heads, t.vocab_size) == (
        hidden, ffn, heads, kv, vocab)
    assert (p.tensor, p.pipeline, p.zero_stage) == (tp, pp, zero)
    # Checkpoint-only (llama_1t's copy-paste train: True is overridden, see OVERRIDES).
    assert (w.workflow.train, w.workflow.checkpoint, w.framework) == (False, True, "pytorch")
    assert (c.time_between_checkpoints, c.num_checkpoints_write, c.num_checkpoints_read, c.fsync) == (5, 10, 10, True)
    assert (w.model.model_datatype, w.model.optimizer_datatype) == ("fp16", "fp32")
