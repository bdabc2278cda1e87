"""Block benchmarking's pure part: macro-structure, random networks per block type, fronts, hypervolume."""
import pytest

from edgetailor.arch import layers
from edgetailor.arch.spec import decode
from edgetailor.choose import blocks_benchmark as bench
from edgetailor.errors import SearchError

# the grammar kinds each block type may put inside a stage (its own downsampling included)
STAGE_KINDS = {"ir": {"ir"}, "fused": {"fused"}, "ds": {"ds"}, "ghost": {"ghost"}, "shuffle": {"shuffle"},
               "xblock": {"xblock"}, "edgenext": {"ln", "patch", "convenc", "sdta"},
               "efficientformerv2": {"conv", "ffn", "attn"}}


def test_hypervolume_of_hand_made_fronts_is_exact():
    # one point (2 ms, 50 %), reference (10 ms, 0 %): an 8 x 50 rectangle
    assert bench.hypervolume([2], [50], 10) == 400
    # staircase (1, 20), (3, 40), (6, 70) to (10, 0): 2*20 + 3*40 + 4*70
    assert bench.hypervolume([6, 1, 3], [70, 20, 40], 10) == 2 * 20 + 3 * 40 + 4 * 70
    # a dominated point (4 ms, 30 %) adds nothing; a point beyond the reference adds nothing
    assert bench.hypervolume([6, 1, 3, 4, 12], [70, 20, 40, 30, 99], 10) == 440
    # a reference accuracy above zero lowers every strip
    assert bench.hypervolume([2], [50], 10, ref_accuracy=10) == 8 * 40
    assert bench.hypervolume([], [], 10) == 0


def test_front_keeps_the_non_dominated_fastest_first():
    latency = [5.0, 1.0, 3.0, 4.0, 3.0]
    accuracy = [90.0, 20.0, 60.0, 50.0, 60.0]
    assert bench.front(latency, accuracy) == [1, 2, 0]  # of the two identical points, the first


def test_summary_shares_one_reference_and_median():
    results = {"a": [{"latency_ms": 1.0, "accuracy": 50.0}, {"latency_ms": 9.0, "accuracy": 80.0}],
               "b": [{"latency_ms": 4.0, "accuracy": 60.0}, {"latency_ms": 10.0, "accuracy": 40.0}]}
    rows, reference = bench.summarise(results)
    assert reference == {"latency_ms": 11.0, "accuracy": 0.0, "median_latency_ms": 6.5}
    a, b = rows
    assert a.front == (0, 1) and a.hypervolume == pytest.approx(8 * 50 + 2 * 80)
    assert b.front == (0,) and b.hypervolume == pytest.approx(7 * 60)
    assert (a.best_under_median, b.best_under_median) == (50.0, 60.0)
    text = bench.table(rows, reference)
    assert text.splitlines()[3].startswith("| a | 2 | 2 | 560.0 | 50.0 |")


@pytest.mark.parametrize("kind", sorted(bench.KINDS))
def test_random_networks_are_valid_specs_of_their_kind_within_the_macro(kind):
    for index in range(6):
        spec = bench.random_network(kind, index, seed=3, resolution=224)
        assert decode(spec.encode()) == spec
        assert spec.stem == bench.MACRO.stem and spec.head == bench.MACRO.head
        layers.count(spec, 10)  # the walk accepts every shape
        assert len(spec.stages) == len(bench.MACRO.stages)
        for stage, allowed in zip(spec.stages, bench.MACRO.stages):
            assert {block.kind for block in stage} <= STAGE_KINDS[kind]
            assert sum(block.stride for block in stage if block.stride == 2) == 2  # one stride-2 entry
            out = stage[-1].channels
            assert allowed.channels[0] <= out <= allowed.channels[1] and out % bench.CHANNEL_STEP == 0
            body = [b for b in stage if b.kind not in ("ln", "patch") and not (b.kind == "conv" and b.stride == 2)]
            assert allowed.depth[0] <= sum(b.repeats for b in body) <= allowed.depth[1]
        assert layers.count(spec, 10) == layers.count(bench.random_network(kind, index, 3, 224), 10)


def test_random_networks_are_deterministic_by_seed_and_vary_by_index():
    draw = lambda seed: [bench.random_network("ir", i, seed, 64).encode() for i in range(5)]  # noqa: E731
    assert draw(0) == draw(0)
    assert draw(0) != draw(1)
    assert len(set(draw(0))) == 5
    assert bench.random_network("ir", 0, 0, 64).stages != bench.random_network("fused", 0, 0, 64).stages


def test_bad_input_is_one_clear_error():
    with pytest.raises(SearchError, match="unknown block type 'mbconv'; known: ir, fused"):
        bench.parse_kinds("ir,mbconv")
    with pytest.raises(SearchError, match="twice"):
        bench.parse_kinds("ir,ir")
    with pytest.raises(SearchError, match="at least one"):
        bench.parse_kinds(" , ")
    with pytest.raises(SearchError, match="multiple of 32"):
        bench.random_network("ir", 0, 0, resolution=48)
    assert bench.parse_kinds(" ir, edgenext ") == ("ir", "edgenext")
