"""The derived plan, pinned by hand-computed numbers (arithmetic in the comments)."""
from pathlib import Path

import pytest

from dldriver.checkpoint import checkpoint_layout
from dldriver.config import derive_plan, load_workload
from dldriver.errors import ConfigError

WORKLOADS = Path(__file__).parents[1] / "configs" / "workloads"
GIB = 1024**3


def plan(name, ranks=1, *overrides):
    return derive_plan(load_workload(WORKLOADS / f"{name}.yaml", overrides), ranks=ranks)


def test_default():
    p = plan("default")
    # 64 files * 1 sample = 64; 64 // (batch 4 * 1 rank) = 16 steps; 16 * 1.0 s = 16 s.
    assert (p.total_samples_train, p.samples_per_rank, p.steps_per_epoch) == (64, 64, 16)
    assert p.compute_seconds_per_epoch == 16.0
    # eval: 8 files * 1 = 8 samples; 8 // (batch_eval 1 * 1) = 8 steps; 8 * 0.5 s = 4 s.
    assert (p.total_samples_eval, p.eval_steps_per_epoch, p.eval_seconds_per_epoch) == (8, 8, 4.0)
    # (64 + 8) samples * 4096 B = 294912 B; no checkpointing -> 0.
    assert (p.dataset_bytes_train, p.dataset_bytes_eval, p.dataset_bytes) == (262144, 32768, 294912)
    assert p.checkpoint_bytes == 0


def test_default_on_three_ranks():
    p = plan("default", 3)
    # 64 // 3 = 21 samples per rank; 64 files / 3 = 21.33 files; 64 // (4 * 3) = 5 steps (DLIO's floor).
    assert (p.samples_per_rank, p.steps_per_epoch, p.eval_steps_per_epoch) == (21, 5, 2)  # eval: 8 // 3 = 2
    assert p.files_per_rank == pytest.approx(21.333, abs=1e-3)


def test_unet3d():
    p = plan("unet3d_a100")
    # 168 // 7 = 24 steps; 24 * 0.636 = 15.264 s; 168 * 146600628 B = 24628905504 B; flat checkpoint 499153191 B.
    assert (p.steps_per_epoch, p.dataset_bytes, p.checkpoint_bytes) == (24, 24628905504, 499153191)
    assert p.compute_seconds_per_epoch == pytest.approx(15.264)
    p = plan("unet3d_a100", 8)
    # 168 // (7 * 8) = 3 steps; 168 // 8 = 21 samples and 21.0 files per rank.
    assert (p.steps_per_epoch, p.samples_per_rank, p.files_per_rank) == (3, 21, 21.0)
    # v100: 168 // 4 = 42 steps; 42 * 1.3604 = 57.1368 s.
    assert plan("unet3d_v100").compute_seconds_per_epoch == pytest.approx(57.1368)


def test_resnet50_is_not_trimmed_to_nothing():
    p = plan("resnet50_a100")
    # 1024 * 1251 = 1281024 samples; // 400 = 3202 steps (DLIO HEAD's file trimming would give 0);
    # 3202 * 0.435 = 1392.87 s; 1281024 * 114660.07 = 146882301511.68 -> 146882301512 B.
    assert (p.total_samples_train, p.steps_per_epoch, p.dataset_bytes) == (1281024, 3202, 146882301512)
    assert p.compute_seconds_per_epoch == pytest.approx(1392.87)


def test_bert_step_cap_and_cosmoflow():
    p = plan("bert_v100")
    # 500 * 313532 = 156766000 samples; // 48 = 3265958 steps, capped at total_training_steps 1000;
    # 1000 * 0.968 = 968 s; 156766000 * 2500 B = 391915000000 B; flat checkpoint 4034713312 B.
    assert (p.steps_per_epoch, p.dataset_bytes, p.checkpoint_bytes) == (1000, 391915000000, 4034713312)
    assert p.compute_seconds_per_epoch == pytest.approx(968.0)
    p = plan("cosmoflow_a100")
    # 524288 steps of batch 1; * 0.00551 = 2888.82688 s; 524288 * 2828486 B = 1482941267968 B.
    assert (p.steps_per_epoch, p.dataset_bytes) == (524288, 1482941267968)
    assert p.compute_seconds_per_epoch == pytest.approx(2888.82688)


def test_megatron_on_32_ranks():
    p = plan("megatron_deepspeed_LLNL", 32)
    # 277203535 // (16 * 32) = 541413 steps, capped at 1000; 1000 * 2.44 = 2440 s.
    assert p.steps_per_epoch == 1000
    # Checkpoint, in DLIO's older keys (TP 4 x PP 8 = 32 ranks, ZeRO 1, one data-parallel group):
    flat = 32 * 30102                                              # model_size per rank, int8
    layer_file = (52583936 // 4 + 209715200 // 4) * 2              # layer_parameters over TP 4, fp16
    layers = 42 * 4 * layer_file                                   # 40 blocks + embedding + head, x TP 4
    optimizer = 32 * 3 * (1009254400 + 865075200 + 793600) * 4     # per rank: 2 moments + their sum, fp32
    assert p.checkpoint_bytes == flat + layers + optimizer == 742081399488
    assert p.compute_seconds_per_epoch == pytest.approx(2440.0)


def test_llama_8b_zero3_is_about_105_gb():
    p = plan("llama_8b_zero3")
    # V=128256 H=4096 L=32 F=14336, dkv = 4096/32*8 = 1024
    # 2VH = 1050673152; per layer 2H + H(H+2dkv) + H^2 + 3HF = 8192 + 25165824 + 16777216 + 176160768
    # = 218112000, * 32 = 6979584000; + H -> 8030261248 parameters.
    assert p.model_parameters == 8030261248
    # fp16 model 2 B + fp32 optimizer 3 * 4 B per parameter, plus 1 rank * 3 groups * 5H * 4 B = 245760:
    # 8030261248 * 14 + 245760 = 112423903232 B = 104.70 GiB.
    assert p.checkpoint_bytes == 112423903232
    assert p.checkpoint_bytes / GIB == pytest.approx(104.70, abs=0.01)


def test_llama_70b_is_about_912_gb():
    p = plan("llama_70b", 32)
    # V=128256 H=8192 L=80 F=28672, dkv = 8192/128*8 = 512
    # 2VH = 2101346304; per layer 16384 + 8192*9216 + 8192^2 + 3*8192*28672
    # = 16384 + 75497472 + 67108864 + 704643072 = 847265792, * 80 = 67781263360; + H -> 69882617856.
    assert p.model_parameters == 69882617856
    # ZeRO 1: all 32 ranks write optimizer state: extras 32 * 15 * 8192 * 4 B = 15728640.
    # 69882617856 * 14 + 15728640 = 978372378624 B = 911.18 GiB (MLPerf's "912 GB").
    assert p.checkpoint_bytes == 978372378624
    assert p.checkpoint_bytes / GIB == pytest.approx(911.18, abs=0.01)


def test_llama_7b_and_zero0_writers():
    # V=32000 H=4096 L=32 F=11008, kv = heads so dkv = 4096: 2VH = 262144000;
    # per layer 8192 + 4096*12288 + 4096^2 + 3*4096*11008 = 202383360, * 32 + 4096 = 6738415616.
    p = plan("llama_7b", 4)
    assert p.model_parameters == 6738415616
    # ZeRO 1 on 4 ranks: 6738415616 * 14 + 4 * 15 * 4096 * 4 = 94337818624 + 983040 = 94338801664.
    assert p.checkpoint_bytes == 94338801664
    # ZeRO 0: only tensor * pipeline = 1 rank writes optimizer state: + 1 * 245760 = 94338064384.
    assert plan("llama_7b", 4, "model.parallelism.zero_stage=0").checkpoint_bytes == 94338064384


def test_sample_bytes_from_record_dims():
    # float32 3 x 224 x 224: 150528 * 4 = 602112 B; 64 + 8 samples -> 43352064 B.
    p = plan("default", 1, "dataset.record_dims=[3,224,224]", "dataset.record_element_type=float32")
    assert (p.sample_bytes, p.dataset_bytes) == (602112, 43352064)
    # jpeg is always uint8: 224 * 224 = 50176 B.
    p = plan("default", 1, "dataset.format=jpeg", "dataset.record_dims=[224,224]",
             "dataset.record_element_type=float32")
    assert p.sample_bytes == 50176


def test_time_distributions_give_their_mean():
    # uniform(0.1, 0.3) has mean 0.2: 16 steps * 0.2 = 3.2 s; gamma shape 2 scale 0.25 -> 0.5: 8 s.
    assert plan("default", 1, "train.computation_time={type: uniform, min: 0.1, max: 0.3}"
                ).compute_seconds_per_epoch == pytest.approx(3.2)
    assert plan("default", 1, "train.computation_time={type: gamma, shape: 2, scale: 0.25}"
                ).compute_seconds_per_epoch == pytest.approx(8.0)


@pytest.mark.parametrize("name,ranks,message", [
    ("llama_70b", 1, "model.parallelism.tensor * model.parallelism.pipeline = 8 * 4 = 32 does not divide the 1"),
    ("llama_70b", 48, "use a multiple of 32 ranks"),
    ("default", 17, "reader.batch_size: 64 training samples give no full batch of 4 on each of 17 rank(s)"),
    ("bert_v100", 4000, "train.total_training_steps: 1000 exceeds the 816 steps per epoch"),  # 156766000 // 192000
    ("default", 0, "ranks: must be an integer >= 1"),
])
def test_rank_dependent_errors(name, ranks, message):
    with pytest.raises(ConfigError) as err:
        plan(name, ranks)
    assert message in str(err.value)


def test_subset_mode_emulates_part_of_a_larger_job():
    subset = ("checkpoint.mode=subset", "model.parallelism.data=8")
    assert plan("llama_8b_zero3", 8, *subset).ranks == 8
    with pytest.raises(ConfigError, match="the 16 rank\\(s\\) exceed the tensor \\* pipeline \\* data = 8"):
        plan("llama_8b_zero3", 16, *subset)


def test_dlio_older_checkpoint_keys_size_the_checkpoint():
    """num_layers, layer_parameters and optimization_groups (DLIO's form before model.transformer) write
    layer and optimizer files beside the flat model: the plan counts them, as the files written do."""
    p = plan("default", 1, "workflow.checkpoint=True", "model.num_layers=2", "model.layer_parameters=[100,200]",
             "model.optimization_groups=[1000,2000]")
    flat = 10240                            # model_size_bytes (DLIO's default), int8
    layers = 4 * (100 + 200) * 2            # layers 0..L+1 (embedding, 2 blocks, head), fp16
    optimizer = (1000 + 2000) * 2 * 4 + (1000 + 2000) * 4  # two moments of each group + their sum, fp32
    assert p.checkpoint_bytes == flat + layers + optimizer == 48640
    w = load_workload(WORKLOADS / "default.yaml", ["workflow.checkpoint=True", "model.num_layers=2",
                                                   "model.layer_parameters=[100,200]",
                                                   "model.optimization_groups=[1000,2000]"])
    assert sum(n for files in checkpoint_layout(w, 1) for _, n in files) == p.checkpoint_bytes


@pytest.mark.parametrize("name, ranks, overrides", [
    ("llama_70b", 32, ()), ("llama_7b_zero3", 8, ()), ("llama_1t", 1024, ()),
    ("llama_8b_zero3", 4, ("checkpoint.mode=subset", "model.parallelism.data=8"))])
def test_planned_checkpoint_size_is_what_the_layout_writes(name, ranks, overrides):
    """The layout is the one source of checkpoint sizes: the plan's bytes are the bytes of the tensor
    files the ranks write (.pt, or tf_save's data files; for llama_1t, tensors split over 1024 ranks
    round down, and the plan with them)."""
    w = load_workload(WORKLOADS / f"{name}.yaml", ["workflow.train=False", "workflow.checkpoint=True", *overrides])
    p = derive_plan(w, ranks)
    world = ranks if w.checkpoint.mode != "subset" else 8
    tensors = [n for files in checkpoint_layout(w, world) for name, n in files
               if name.endswith((".pt", ".data-00000-of-00001"))]
    assert p.checkpoint_bytes == sum(tensors) > 0
