"""Checkpoint layouts: DLIO's file names and counts, sizes from the transformer formula, bad parallelism."""
import re

import pytest

from dldriver.checkpoint.layout import (DTYPE_BYTES, MIN_TENSOR_BYTES, TF_INDEX_BYTES, checkpoint_folder,
                                        checkpoint_layout, mechanism, stage_layers, tf_state_bytes,
                                        transformer_params)
from dldriver.config.model import Parallelism, Transformer, Workload
from dldriver.errors import ConfigError

GIB = 1024 ** 3


def llama(layers, hidden, ffn, heads, kv, vocab, tp, pp, zero, framework="pytorch"):
    w = Workload()
    w.framework = framework  # the llama configs are pytorch's
    w.model.name, w.model.type, w.model.num_layers = "llama", "transformer", layers
    w.model.transformer = Transformer(vocab, hidden, ffn, heads, kv)
    w.model.parallelism = Parallelism(tp, pp, -1, zero)
    return w


def llama_8b_zero3():
    return llama(32, 4096, 14336, 32, 8, 128256, 1, 1, 3)


def llama_70b():
    return llama(80, 8192, 28672, 128, 8, 128256, 8, 4, 1)


def small(tp=1, pp=1, zero=0, layers=4, framework="pytorch"):
    return llama(layers, 64, 256, 8, 2, 1000, tp, pp, zero, framework)


def names(lay):
    return sorted(n for files in lay for n, _ in files)


def total(lay):
    return sum(b for files in lay for _, b in files)


def test_transformer_params_by_hand():
    # llama 8B: 2*128256*4096 + 32*(2*4096 + 4096*(4096+2*1024) + 4096^2 + 3*4096*14336) + 4096
    assert transformer_params(llama_8b_zero3().model) == 8_030_261_248
    assert transformer_params(llama_70b().model) == 69_882_617_856


def test_llama_8b_zero3_total_is_105_gb():
    lay = checkpoint_layout(llama_8b_zero3(), 8)
    assert total(lay) / GIB == pytest.approx(105, rel=0.01)
    # 2 bytes per parameter (fp16 model) + 12 (three fp32 optimizer groups), within 1 % of the formula
    assert total(lay) == pytest.approx(14 * transformer_params(llama_8b_zero3().model), rel=0.01)
    assert all(len(files) == 2 for files in lay)
    assert lay[5] == [("zero_pp_rank_5_mp_rank_0_model_states.pt", pytest.approx(2 * 8_030_261_248 / 8, rel=0.01)),
                      ("zero_pp_rank_5_mp_rank_0_optim_states.pt", pytest.approx(12 * 8_030_261_248 / 8, rel=0.01))]


def test_llama_70b_total_is_912_gb_and_every_file_is_there():
    lay = checkpoint_layout(llama_70b(), 64)
    assert total(lay) / GIB == pytest.approx(912, rel=0.01)
    # TP 8 x PP 4 x DP 2, ZeRO 1: 64 optimizer files; DP rank 0 writes its stage's layers per tensor rank
    optim = [n for n in names(lay) if n.endswith("_optim_states.pt")]
    layer_files = [n for n in names(lay) if n.startswith("layer_")]
    assert len(optim) == 64
    assert len(layer_files) == 8 * 82  # layers 0 (embedding), 1..80, 81 (lm_head) for each of 8 tensor ranks
    assert all(lay[r] == [(f"zero_pp_rank_1_mp_rank_{r - 32}_optim_states.pt", lay[r][0][1])] for r in range(32, 64))
    assert "layer_0-model_0_model_states.pt" in dict(lay[0])
    assert "layer_81-model_31_model_states.pt" in dict(lay[31])


def test_model_bytes_are_the_formula_split_over_ranks():
    w = small(tp=2, pp=2, zero=1)
    lay = checkpoint_layout(w, 8)
    p = transformer_params(w.model)
    model = sum(b for files in lay for n, b in files if "model_states" in n)
    optim = sum(b for files in lay for n, b in files if "optim" in n)
    assert model == pytest.approx(2 * p, rel=0.01)
    assert optim == pytest.approx(12 * p, rel=0.01)


@pytest.mark.parametrize("tp, pp, zero, world, per_rank", [
    # DLIO's test_checkpoint_epoch (TP = world, PP 1): model + optimizer (+ the flat model) per rank
    (2, 1, 0, 2, ["zero_pp_rank_0_mp_rank_{r}_model_states.pt", "zero_pp_rank_0_mp_rank_{r}_optim_states.pt"]),
    (2, 1, 3, 2, ["zero_pp_rank_0_mp_rank_{r}_model_states.pt", "zero_pp_rank_0_mp_rank_{r}_optim_states.pt"]),
    (1, 1, 1, 1, ["model_{r}_model_states.pt", "zero_pp_rank_0_mp_rank_{r}_optim_states.pt"]),
    (1, 1, 3, 4, ["zero_pp_rank_{r}_mp_rank_0_model_states.pt", "zero_pp_rank_{r}_mp_rank_0_optim_states.pt"]),
])
def test_names_per_rank(tp, pp, zero, world, per_rank):
    lay = checkpoint_layout(small(tp, pp, zero), world)
    for r in range(world):
        assert [n for n, _ in lay[r]] == [p.format(r=r) for p in per_rank]


def dlio_checkpoint_epoch_workload(framework, zero, world):
    """DLIO's test_checkpoint_epoch: model_size 1024, optimization_groups [1024, 128], num_layers 2,
    layer_parameters [16], TP = world size."""
    w = Workload()
    w.framework = framework
    w.model.model_size_bytes, w.model.optimization_groups = 1024, [1024, 128]
    w.model.num_layers, w.model.layer_parameters = 2, [16]
    w.model.parallelism = Parallelism(world, 1, -1, zero)
    return w


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("zero", [0, 3])
@pytest.mark.parametrize("framework, per_checkpoint", [
    # DLIO's expected files in one checkpoint folder: three tensor files per rank, as .pt for pytorch; an
    # index and a data file each plus the folder's `checkpoint` file for tensorflow
    ("pytorch", lambda n: 3 * n),
    ("tensorflow", lambda n: 3 * n * 2 + 1),
])
def test_dlio_test_checkpoint_epoch_counts(framework, per_checkpoint, zero, world):
    lay = checkpoint_layout(dlio_checkpoint_epoch_workload(framework, zero, world), world)
    assert len(names(lay)) == len(set(names(lay))) == per_checkpoint(world)


def test_dlio_test_checkpoint_epoch_names():
    pt = checkpoint_layout(dlio_checkpoint_epoch_workload("pytorch", 0, 2), 2)
    assert [n for n, _ in pt[1]] == ["model_states-1.pt", "zero_pp_rank_0_mp_rank_1_model_states.pt",
                                     "zero_pp_rank_0_mp_rank_1_optim_states.pt"]
    assert dict(pt[1])["model_states-1.pt"] == 1024
    tf = checkpoint_layout(dlio_checkpoint_epoch_workload("tensorflow", 0, 2), 2)
    stems = ["model_states-1", "zero_pp_rank_0_mp_rank_1_model_states", "zero_pp_rank_0_mp_rank_1_optim_states"]
    assert [n for n, _ in tf[1]] == [f"{stem}.pb-1{suffix}" for stem in stems
                                     for suffix in (".index", ".data-00000-of-00001")]
    # rank 0 ends with the folder's state file, naming the last prefix it saved: 141 bytes, as TensorFlow
    # 2.21 writes it for this name
    assert tf[0][-1] == ("checkpoint", tf_state_bytes("zero_pp_rank_0_mp_rank_0_optim_states.pb-1"))
    assert tf[0][-1][1] == 141


@pytest.mark.parametrize("framework, expected", [("tensorflow", "tf_save"), ("pytorch", "pt_save"),
                                                 ("jax", "pt_save"), ("native", "pt_save")])
def test_mechanism_follows_the_framework(framework, expected):
    assert mechanism(framework) == expected
    lay = checkpoint_layout(small(framework=framework), 1)
    assert all(n.endswith(".pt") for n in names(lay)) == (expected == "pt_save")


def test_tensorflow_data_files_carry_the_tensor_bytes():
    # per tensor file, the data file holds what the .pt holds; the index and state files are all that is added
    for args in ((1, 1, 3, 8), (2, 2, 1, 8)):
        tp, pp, zero, world = args
        pt = checkpoint_layout(small(tp, pp, zero), world)
        tf = checkpoint_layout(small(tp, pp, zero, framework="tensorflow"), world)
        for pt_files, tf_files in zip(pt, tf):
            data = [(n.replace(".pb-1.data-00000-of-00001", ".pt"), b) for n, b in tf_files if ".data-" in n]
            assert data == pt_files
            assert [b for n, b in tf_files if n.endswith(".index")] == [TF_INDEX_BYTES] * len(pt_files)
        tensors = sum(len(f) for f in pt)
        assert total(tf) == total(pt) + tensors * TF_INDEX_BYTES + dict(tf[0])["checkpoint"]


def test_tensorflow_llama_8b_total_stays_within_1_percent_of_the_formula():
    w = llama_8b_zero3()
    w.framework = "tensorflow"
    lay = checkpoint_layout(w, 8)
    assert total(lay) == pytest.approx(14 * transformer_params(w.model), rel=0.01)
    assert sum(n == "checkpoint" for n in names(lay)) == 1 and len(names(lay)) == 8 * 2 * 2 + 1


def test_zero0_only_first_replica_writes():
    lay = checkpoint_layout(small(tp=2, zero=0), 8)
    assert [bool(f) for f in lay] == [True, True] + [False] * 6


def test_pipeline_stages_cover_every_layer_once():
    for layers, pp in ((80, 4), (7, 3), (5, 5)):
        covered = [l for s in range(pp) for l in stage_layers(layers, pp, s)]
        assert covered == list(range(layers + 2))
    lay = checkpoint_layout(small(tp=1, pp=3, zero=2, layers=7), 6)
    stage_names = [sorted(n for n, _ in lay[s]) for s in range(3)]
    assert "layer_0-model_0_model_states.pt" in stage_names[0]
    assert "layer_8-model_2_model_states.pt" in stage_names[2]
    assert lay[3] == [("zero_pp_rank_1_mp_rank_0_optim_states.pt", lay[3][0][1])]


def test_flat_model():
    w = Workload()
    w.framework = "pytorch"
    w.model.model_size_bytes = 4096
    # ZeRO 0 (the default) replicates the model: only rank 0 saves it; with ZeRO 1 every rank saves its own
    assert checkpoint_layout(w, 2) == [[("model_states-0.pt", 4096)], []]
    w.model.parallelism.zero_stage = 1
    assert checkpoint_layout(w, 2) == [[("model_states-0.pt", 4096)], [("model_states-1.pt", 4096)]]


def test_dtypes_change_bytes():
    w = small()
    w.model.model_datatype, w.model.optimizer_datatype = "fp32", "fp64"
    p = transformer_params(w.model)
    assert total(checkpoint_layout(w, 1)) == pytest.approx((4 + 24) * p, rel=0.01)
    assert DTYPE_BYTES["bf16"] == 2


def test_scale_keeps_every_file_and_name():
    full, tiny = checkpoint_layout(llama_70b(), 64), checkpoint_layout(llama_70b(), 64, scale=1e-4)
    assert names(full) == names(tiny)
    assert total(tiny) == pytest.approx(total(full) * 1e-4, rel=0.02)
    assert min(b for files in tiny for _, b in files) >= MIN_TENSOR_BYTES


@pytest.mark.parametrize("tp, pp, zero, world, keys", [
    (3, 1, 0, 8, ["model.parallelism.tensor", "model.parallelism.pipeline"]),
    (1, 2, 3, 4, ["model.parallelism.zero_stage", "model.parallelism.pipeline"]),
    (1, 8, 1, 8, ["model.num_layers"]),
])
def test_bad_parallelism_names_keys(tp, pp, zero, world, keys):
    with pytest.raises(ConfigError) as err:
        checkpoint_layout(small(tp, pp, zero, layers=4), world)
    for key in keys:
        assert key in str(err.value)


def test_bad_scale():
    with pytest.raises(ConfigError, match="checkpoint-scale"):
        checkpoint_layout(small(), 1, scale=0)


def test_folder_name():
    assert checkpoint_folder(1, 10) == "global_epoch1_step10"
    assert re.fullmatch(r"global_epoch\d+_step\d+", checkpoint_folder(3, 0))
