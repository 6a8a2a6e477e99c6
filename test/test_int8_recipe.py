"""The int8 recipe: which blocks stay fp32 (chosen from the per-block sensitivity), what NNCF
quantizes in the graph, calibration from several frame sources, and the recipe in the cache key."""
import argparse

import pytest
import torch
from test_lowp import _images

from espnet_ros.cli import calibrate as calibrate_cli
from espnet_ros.inference.artifact_cache import cache_key
from espnet_ros.inference.calibration import CalibrationSpec, FrameSet, load_spec, write_spec
from espnet_ros.inference.calibration import sensitivity as sens
from espnet_ros.inference.calibration.frames import read_frame_sets, read_frames
from espnet_ros.models import create_model

# -- blocks and their ignored-scope patterns -----------------------------------------------------

def test_blocks_are_the_first_module_level_of_the_exported_names():
    names = ["input_0", "/level1/conv/Conv/WithoutBiases", "/level1/act/PRelu",
             "/level3.4/c1/conv/Conv", "/level3.4/Add_2", "/level3_0/d1/conv/Conv",
             "/combine_l2_l3/combine_l2_l3.1/c1/conv/Conv", "/conv/conv/Conv", "/Concat_4",
             "output_0"]
    assert sens.model_blocks(names) == ["/level1/", "/level3.4/", "/level3_0/",
                                        "/combine_l2_l3/combine_l2_l3.1/", "/conv/"]
    assert sens.block_of("output_0") == sens.block_of("/Concat_4") == sens.OTHER


def test_patterns_select_a_block_and_everything_but_it():
    import re
    names = ["/level3.4/c1/conv/Conv", "/level3.40/c1/conv/Conv", "/level3_4/x", "/conv/conv/Conv",
             "output_0"]
    only = re.compile(sens.block_pattern("/level3.4/"))
    others = re.compile(sens.all_but_pattern("/level3.4/"))
    assert [bool(only.match(n)) for n in names] == [True, False, False, False, False]
    assert [bool(others.match(n)) for n in names] == [False, True, True, True, True]


# -- choosing the fp32 blocks --------------------------------------------------------------------

SOLO = {"/a/": (0.95, 0.97), "/b/": (0.999, 0.999), "/c/": (0.985, 0.99), "/d/": (0.995, 0.996),
        "/e/": (1.0, 1.0)}


def _whole(costs):
    """A model whose agreement loses each quantized block's cost (1 - its solo minimum)."""
    def measure(kept):
        loss = sum(1 - SOLO[b][0] for b in SOLO if b not in kept and b in costs)
        return 1 - loss, 1 - loss / 2
    return measure


def _min_at_least(target):
    return lambda low, mean: low >= target


def test_a_model_that_reaches_the_target_whole_keeps_nothing_and_skips_the_table():
    measured_alone = []
    choice = sens.choose_fp32_blocks(list(SOLO), lambda b: measured_alone.append(b),
                                     lambda kept: (0.995, 0.998), _min_at_least(0.992), 4)
    assert choice.kept == () and choice.table == [] and measured_alone == []
    assert choice.steps == [((), (0.995, 0.998))]


def test_blocks_below_the_target_alone_stay_fp32_then_the_worst_others_until_it_is_reached():
    choice = sens.choose_fp32_blocks(list(SOLO), lambda b: SOLO[b], _whole(SOLO),
                                     _min_at_least(0.992), 4)
    # /a/ and /c/ fail alone; with them fp32 the rest loses 0.001 + 0.005 = 0.006 -> 0.994.
    assert choice.kept == ("/a/", "/c/")
    assert choice.agreement[0] == pytest.approx(0.994)
    assert [row.block for row in choice.table] == list(SOLO)   # graph order, all measured
    assert [kept for kept, _ in choice.steps] == [(), ("/a/", "/c/")]

    tighter = sens.choose_fp32_blocks(list(SOLO), lambda b: SOLO[b], _whole(SOLO),
                                      _min_at_least(0.9985), 4)
    assert tighter.kept == ("/a/", "/c/", "/d/")              # the next most sensitive joined
    assert tighter.agreement[0] == pytest.approx(0.999)


def test_the_target_is_the_gates_all_pixel_agreement_with_a_floor_for_each_frame():
    from espnet_ros.inference.calibration import gate
    assert gate.reaches(0.975, 0.995) and gate.reaches(gate.FRAME_FLOOR, gate.MIN_AGREEMENT)
    assert not gate.reaches(0.969, 0.999)                 # one ruined frame
    assert not gate.reaches(0.99, 0.9899)                 # every frame fine, too many pixels off
    assert not gate.reaches(0.99, 0.993, margin=0.005)    # the trials aim above the gate
    # Ranked by mean agreement: /c/ loses more pixels than /d/ though its worst frame is better.
    solo = {"/c/": (0.99, 0.991), "/d/": (0.985, 0.997), "/e/": (1.0, 1.0)}

    def whole(kept):
        loss = sum(1 - solo[b][1] for b in solo if b not in kept)
        return 0.98, 1 - loss
    choice = sens.choose_fp32_blocks(list(solo), lambda b: solo[b], whole, gate.reaches, 2)
    assert choice.kept == ("/c/",) and choice.agreement == pytest.approx((0.98, 0.997))


def test_the_share_of_fp32_blocks_is_capped_and_the_gate_judges_what_was_reached():
    choice = sens.choose_fp32_blocks(list(SOLO), lambda b: SOLO[b], _whole(SOLO),
                                     _min_at_least(0.9999), 2)
    assert choice.kept == ("/a/", "/c/") and choice.agreement[0] < 0.9999
    none = sens.choose_fp32_blocks(list(SOLO), lambda b: SOLO[b], _whole(SOLO),
                                   _min_at_least(0.9999), 0)
    assert none.kept == () and none.table == []


def test_the_sensitivity_table_prints_as_markdown_with_the_kept_blocks():
    table = [sens.BlockSensitivity("/level1/", 0.9593, 0.9725),
             sens.BlockSensitivity("/conv/", 0.9949, 0.9959)]
    text = sens.format_table(table, kept=("/level1/",))
    assert "| `/level1/` | 95.93 % / 97.25 % | yes |" in text
    assert "| `/conv/` | 99.49 % / 99.59 % |  |" in text


# -- what the recipe quantizes in the OpenVINO graph ---------------------------------------------

def _fake_quantized_consumers(ov_model):
    """{consumer op name: its type} of every FakeQuantize on an activation (not on weights)."""
    consumers = {}
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        if op.input_value(0).get_node().get_type_name() == "Constant":
            continue
        for target in op.output(0).get_target_inputs():
            node = target.get_node()
            consumers[node.get_friendly_name()] = node.get_type_name()
    return consumers


def test_int8_leaves_adds_concats_batchnorms_and_kept_blocks_in_fp32():
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from espnet_ros.inference.backends import openvino_lowp as lowp
    from espnet_ros.inference.backends.openvino_convert import convert_pieces
    torch.manual_seed(0)
    model, _ = create_model("espnet-p2q3-cityscapes", pretrained=False)
    ov_model = convert_pieces(model.eval(), torch.randn(1, 3, 32, 64))["model"]
    items = [torch.randn(1, 3, 32, 64).numpy() * 0.01 for _ in range(2)]
    nncf = lowp.import_nncf()

    whole = _fake_quantized_consumers(lowp.quantize(nncf, ov_model, items))
    assert not set(whole.values()) & {"Add", "Concat", "Multiply", "BatchNormInference"}
    assert {"Convolution", "ConvolutionBackpropData"} <= set(whole.values())
    assert any(name.startswith("/level3.1/") for name in whole)

    kept = ("/level1/", "/level3.1/")
    partial = _fake_quantized_consumers(lowp.quantize(
        nncf, ov_model, items, [sens.block_pattern(b) for b in kept]))
    assert partial and not any(name.startswith(kept) for name in partial)
    assert set(partial) == {n for n in whole if not n.startswith(kept)}


# -- calibration frames from several sources -----------------------------------------------------

def test_several_calibration_sources_round_trip_and_key_all_their_pixels(tmp_path):
    first = FrameSet("images", str(_images(tmp_path / "a", 3, seed=1)))
    second = FrameSet("images", str(_images(tmp_path / "b", 2, seed=2)))
    both = read_frame_sets((first, second))
    assert len(both.images) == 5 and both.names[:3] == read_frames(first).names
    assert read_frame_sets(first).sha256 == read_frames(first).sha256   # one source: as before
    assert both.sha256 not in (read_frames(first).sha256, read_frames(second).sha256)

    spec = write_spec(tmp_path / "cal", CalibrationSpec("int8", first, "00", (first, second),
                                                        both.sha256, "espnet-p2q8-cityscapes"))
    loaded = load_spec(spec.path)
    assert loaded.calibration == (first, second) and loaded.calibration_sha256 == both.sha256
    single = load_spec(write_spec(tmp_path / "one", spec._replace(calibration=first)).path)
    assert single.calibration == first


def test_calibrate_extra_images_follow_the_dataset_frames(tmp_path):
    args = argparse.Namespace(precision="int8", dataset="camvid", data_root=tmp_path / "camvid",
                              split="train", frames=98, extra_images=[tmp_path / "cs"],
                              gate_dataset="camvid", gate_root=None, gate_split="val",
                              gate_frames=None)
    calibration, gate = calibrate_cli.frame_sets(args)
    assert calibration == (FrameSet("camvid", str(tmp_path / "camvid"), "train", 98),
                           FrameSet("images", str(tmp_path / "cs")))
    assert gate == FrameSet("camvid", str(tmp_path / "camvid"), "val", None)


def test_the_recipe_is_part_of_the_cache_key(monkeypatch):
    pytest.importorskip("openvino")
    from espnet_ros.inference.backends import openvino_lowp as lowp
    fields = dict(weights="ab" * 32, args={}, input_shape=(1, 3, 512, 1024), precision="int8",
                  calibration_sha="cd" * 32, gate_sha="ef" * 32,
                  versions={"torch": "2", "openvino": "3", "nncf": "4"})
    before = cache_key(lowp.cache_fields(**fields))
    monkeypatch.setattr(lowp, "RECIPE", dict(lowp.RECIPE, **{"max fp32 share": 0.5}))
    assert cache_key(lowp.cache_fields(**fields)) != before
