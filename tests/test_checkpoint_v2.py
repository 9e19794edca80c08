"""`--dlio-defaults 2.0.0`: DLIO 2.0.0's checkpoint files and sizes (docs/dlio-facts.md §6a).

The expected file sets are computed here from the formula as docs/dlio-facts.md states it (from DLIO
v2.0.0's base_checkpointing.py, commit 866828ce), not from dl-driver's layout code.
"""
import json
from pathlib import Path

import pytest

from dldriver.checkpoint import checkpoint_layout
from dldriver.cli import main
from dldriver.config import derive_plan, load_workload
from dldriver.config.loader import load_workload_mapping
from dldriver.errors import ConfigError

UPSTREAM = Path(__file__).parent / "data" / "upstream"
# DLIO 2.0.0's defaults: num_layers 1, layer_parameters [17371, 24740228] -> one int8 layer file.
V2_LAYER_BYTES = 17371 + 24740228
assert V2_LAYER_BYTES == 24757599

# A llama-7b-sized checkpoint as a DLIO 2.0.0 user had to write it: 2.0.0's keys under `checkpoint:`.
LLAMA_V2 = {
    "model": "llama_7b", "framework": "pytorch",
    "workflow": {"generate_data": False, "train": False, "checkpoint": True},
    "checkpoint": {"checkpoint_folder": "ckpt", "type": "all_ranks", "model_size": 30102,
                   "optimization_groups": [1009254400, 865075200, 793600], "num_layers": 32,
                   "layer_parameters": [129761280, 20971520], "tensor_parallelism": 2,
                   "pipeline_parallelism": 2, "num_checkpoints_write": 1},
}


def dlio_v2_files(model_size, groups, num_layers, layer_parameters, tp, pp, ranks, all_ranks, epoch, step):
    """DLIO 2.0.0's checkpoint() as docs/dlio-facts.md §6a states it, for pt_save: {name: int8 bytes}."""
    files = {}
    for rank in (range(ranks) if all_ranks else [0]):
        if model_size > 0:
            files[f"model-{epoch}-{step}-{rank}.pt"] = model_size
        if groups:
            files[f"optimizer-{epoch}-{step}-{rank}.pt"] = 3 * sum(g for g in groups if g > 0)
        if rank % pp == 0 and num_layers > 0:
            for layer in range(num_layers + (tp if tp > 1 else 0)):
                files[f"layer-{layer}-{epoch}-{step}-{rank}.pt"] = sum(p for p in layer_parameters if p > 0)
    return files


def as_dict(layout):
    names = [name for files in layout for name, _ in files]
    assert len(names) == len(set(names))
    return {name: n for files in layout for name, n in files}


@pytest.mark.parametrize("ranks", [2, 8])
def test_llama_written_for_2_0_0_gets_its_files_and_sizes(ranks):
    w = load_workload_mapping(LLAMA_V2, dlio_defaults="2.0.0")
    c = LLAMA_V2["checkpoint"]
    expected = dlio_v2_files(c["model_size"], c["optimization_groups"], c["num_layers"], c["layer_parameters"],
                             tp=2, pp=2, ranks=ranks, all_ranks=True, epoch=1, step=3)
    assert as_dict(checkpoint_layout(w, ranks, epoch=1, step=3)) == expected
    assert derive_plan(w, ranks).checkpoint_bytes == sum(expected.values())
    # 34 layer files (32 + TP) on each even rank, each 150732800 bytes
    assert sum(name.startswith("layer-") for name in expected) == 34 * (ranks // 2)


def test_defaults_add_one_layer_file_to_model_size():
    # MLPerf Storage v1.0's unet3d ran on DLIO 2.0.0: model_size plus the default layer file, on rank 0 only.
    path = UPSTREAM / "mlperf-v1.0" / "unet3d_a100.yaml"
    w = load_workload(path, dlio_defaults="2.0.0")
    assert as_dict(checkpoint_layout(w, 4, epoch=5, step=24)) == {
        "model-5-24-0.pt": 499153191, "layer-0-5-24-0.pt": V2_LAYER_BYTES}
    assert derive_plan(w, 4).checkpoint_bytes == 499153191 + V2_LAYER_BYTES
    assert derive_plan(load_workload(path), 4).checkpoint_bytes == 499153191  # HEAD: model_states alone


def test_tensorflow_tensors_are_int32_of_a_quarter_the_size():
    # bert_v100 (tensorflow): get_tensor(size) is int32 of int(size / 4) elements.
    w = load_workload(UPSTREAM / "dlio-v2.0.0" / "bert_v100.yaml", dlio_defaults="2.0.0")
    files = as_dict(checkpoint_layout(w, 1, epoch=1, step=250))
    assert files["model-1-250-0.pb-1.data-00000-of-00001"] == 4 * (4034713312 // 4)
    assert files["layer-0-1-250-0.pb-1.data-00000-of-00001"] == 4 * (17371 // 4) + 4 * (24740228 // 4)
    assert {n for n in files if n.endswith(".index")} == {"model-1-250-0.pb-1.index", "layer-0-1-250-0.pb-1.index"}
    assert "checkpoint" in files


def test_keys_2_0_0_never_read_are_refused_in_one_line(capsys):
    # A HEAD llama file's transformer model means nothing to DLIO 2.0.0: refused, naming the keys.
    path = UPSTREAM / "dlio-main" / "llama_7b.yaml"
    assert main(["validate", "--dlio-defaults", "2.0.0", str(path)]) == 2
    err = capsys.readouterr().err
    assert "model.type: DLIO 2.0.0 does not read this key" in err
    assert "model.transformer.hidden_size: DLIO 2.0.0 does not read" in err
    assert main(["validate", str(path)]) == 0  # HEAD's defaults take it as it is


def test_num_layers_must_divide_as_2_0_0_checks():
    doc = json.loads(json.dumps(LLAMA_V2))
    doc["checkpoint"]["num_layers"] = 31
    with pytest.raises(ConfigError, match=r"checkpoint.num_layers: 31 must be a multiple of the pipeline "
                                          r"parallelism 2 \(DLIO 2.0.0's rule\)"):
        load_workload_mapping(doc, dlio_defaults="2.0.0")


def test_a_real_checkpoint_run_under_2_0_0_defaults_writes_those_files(tmp_path, capsys):
    # The files as DLIO 2.0.0 names them, flat in checkpoint_folder, at full size; then read back.
    config = tmp_path / "tiny.yaml"
    config.write_text("model: tiny\nframework: pytorch\ncheckpoint:\n  model_size: 4096\n")
    ckpt = tmp_path / "ckpt"
    code = main(["checkpoint", "-q", "--dlio-defaults", "2.0.0", str(config), "-o", str(tmp_path / "out"),
                 f"++checkpoint.checkpoint_folder={ckpt}", "++checkpoint.num_checkpoints_write=2",
                 "++checkpoint.num_checkpoints_read=1"])
    assert code == 0, capsys.readouterr().err
    expected = {}
    for step in (1, 2):
        expected |= dlio_v2_files(4096, [], 1, [17371, 24740228], tp=1, pp=1, ranks=1, all_ranks=False,
                                  epoch=1, step=step)
    assert {p.name: p.stat().st_size for p in ckpt.iterdir()} == expected
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dldriver"]["checkpoint_bytes"] == 4096 + V2_LAYER_BYTES
    assert [op["bytes"] for op in summary["dldriver"]["loads"]] == [4096 + V2_LAYER_BYTES]
    # A rerun into the same folder is allowed: 2.0.0's files are a checkpoint folder's own names.
    assert main(["checkpoint", "-q", "--dlio-defaults", "2.0.0", str(config), "-o", str(tmp_path / "out"),
                 f"++checkpoint.checkpoint_folder={ckpt}", "++checkpoint.num_checkpoints_write=1"]) == 0


def test_tensorflow_checkpoints_share_one_state_file_and_each_reads_back(tmp_path, capsys):
    # tf_save: every save rewrites checkpoint_folder's one `checkpoint` file, which then names the 10th
    # save; reading the 1st back reads that save's own files, verified.
    config = tmp_path / "tiny.yaml"
    config.write_text("model: tiny\nframework: tensorflow\ncheckpoint:\n  model_size: 4096\n")
    ckpt = tmp_path / "ckpt"
    code = main(["checkpoint", "-q", "--dlio-defaults", "2.0.0", "--checkpoint-scale", "0.001", str(config),
                 "-o", str(tmp_path / "out"), f"++checkpoint.checkpoint_folder={ckpt}",
                 "++checkpoint.num_checkpoints_write=10", "++checkpoint.num_checkpoints_read=1"])
    assert code == 0, capsys.readouterr().err
    names = sorted(p.name for p in ckpt.iterdir())
    assert names.count("checkpoint") == 1 and len(names) == 1 + 10 * 2 * 2
    last = "layer-0-1-10-0.pb-1"
    assert (ckpt / "checkpoint").stat().st_size == len(f'model_checkpoint_path: "{last}"\n'
                                                       f'all_model_checkpoint_paths: "{last}"\n')


def test_a_2_0_0_checkpoint_on_s3_is_flat_under_the_prefix(tmp_path, capsys, s3_uri):
    from dldriver.storage import open_storage

    config = tmp_path / "tiny.yaml"
    config.write_text("model: tiny\nframework: pytorch\ncheckpoint:\n  model_size: 4096\n  type: all_ranks\n")
    code = main(["checkpoint", "-q", "--dlio-defaults", "2.0.0", "--ranks", "2", "--checkpoint-scale", "0.001",
                 str(config), "-o", str(tmp_path / "out"), f"++checkpoint.checkpoint_folder={s3_uri}/ck",
                 "++checkpoint.num_checkpoints_write=1", "++checkpoint.num_checkpoints_read=1"])
    assert code == 0, capsys.readouterr().err
    # each tensor scaled, keeping at least 8 bytes (MIN_TENSOR_BYTES)
    model, layer = max(8, int(4096 * 0.001)), int(17371 * 0.001) + int(24740228 * 0.001)
    assert open_storage(f"{s3_uri}/ck").list_sizes() == {
        "model-1-1-0.pt": model, "model-1-1-1.pt": model, "layer-0-1-1-0.pt": layer, "layer-0-1-1-1.pt": layer}
