"""Smoke test of the benchmark command: every figure at a tiny size, no
timing assertions."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from benchmarks.benchmark import PLANS, main, run_benchmark


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    output = tmp_path_factory.mktemp("bench")
    cores = os.sched_getaffinity(0)
    result = run_benchmark(output, "tiny", echo=False)
    # The one-core figures leave the process on all its cores again.
    assert os.sched_getaffinity(0) == cores
    return result, output


def test_json_written_with_every_section(tiny_result: tuple[dict, Path]) -> None:
    result, output = tiny_result
    on_disk = json.loads((output / "benchmark.json").read_text())
    assert on_disk["summary_lines"] == result["summary_lines"]
    for key in (
        "meta",
        "repos",
        "butler_read",
        "render",
        "end_to_end",
        "memory",
        "scaling",
        "png",
        "summary_lines",
    ):
        assert key in on_disk, key
    # The target regimes, render and original way ran on one core.
    assert on_disk["meta"]["one_core"] in os.sched_getaffinity(0)
    assert any(
        line.startswith("[meta] figures 0, 1, 2, 5, 6 and 7 typical run on one core (CPU ")
        for line in result["summary_lines"]
    )
    # The file system's cost of creating a file, at the start and the end.
    assert on_disk["meta"]["file_create_ms_start"] > 0 and on_disk["meta"]["file_create_ms_end"] > 0
    assert any(
        line.startswith("[meta] creating a file in the work directory costs ")
        for line in result["summary_lines"]
    )
    # The hypervisor's share of the CPU time is reported where Linux counts it.
    if on_disk["meta"]["steal_share"] is not None:
        assert 0.0 <= on_disk["meta"]["steal_share"] <= 1.0
        assert "(steal): " in result["summary_lines"][-1]
    read = on_disk["butler_read"]
    assert read["bbox_shape"] == [30, 30] and read["bbox_get_ms"] > 0 and read["full_get_ms"] > 0
    assert not (output / "work").exists()
    assert all(Path(path).stat().st_size > 0 for path in on_disk["samples"])
    sequence = on_disk["sequences"]["seconds_per_object"]["3"]
    assert sequence["epochs_drawn"] == 3 and sequence["wall_seconds"] > 0


def test_render_figures(tiny_result: tuple[dict, Path]) -> None:
    render = tiny_result[0]["render"]
    combos = {(tuple(c["sizes"]), c["metadata"]) for c in render["configs"]}
    assert combos == {((30,), True), ((30,), False), ((30, 64), True), ((30, 64), False)}
    for config in render["configs"]:
        for key in ("ours_ms", "ours_ms_cpu", "baseline_ms", "baseline_ms_cpu", "ratio", "ratio_cpu"):
            assert _positive(config[key]), (key, config)
        assert _positive(config["ours_png_bytes"]) and _positive(config["baseline_png_bytes"])
    assert isinstance(render["meets_target"], bool)
    # The profile finds the renderer's functions wherever their modules live.
    parts = render["ours_breakdown"]["parts"]
    assert all(0 <= part["fraction"] <= 1 for part in parts.values()), parts
    assert parts["PNG encode"]["fraction"] > 0
    assert parts["display scaling (intervals, stretches)"]["fraction"] > 0


def test_end_to_end_figures(tiny_result: tuple[dict, Path]) -> None:
    e2e = tiny_result[0]["end_to_end"]
    plan = PLANS["tiny"]
    assert e2e["dense"]["n_sources"] >= plan.min_dense_sources
    assert e2e["sparse"]["n_sources"] <= plan.max_sparse_sources
    for regime in ("dense", "sparse"):
        entry = e2e[regime]
        assert entry["whole"]["whole_read_min_sources"] == 1
        assert entry["bbox"]["whole_read_min_sources"] > entry["n_sources"]
        for mode in ("whole", "bbox", "default"):
            run = entry[mode]
            assert run["written"] > 0
            for key in ("wall_s", "cpu_s", "ms_per_source", "sources_per_s", "sources_per_s_cpu"):
                assert _positive(run[key]), (regime, mode, key)
        original = entry["original"]
        assert original["n_drawn"] <= original["n_sources"]
        for key in ("ms_per_source", "ms_per_source_cpu", "read_whole_exposures_s", "draw_ms_per_source"):
            assert _positive(original[key]), (regime, key)
        assert _positive(entry["speedup_vs_original"])
    assert e2e["dense"]["original"]["extrapolated"] == (
        e2e["dense"]["original"]["n_drawn"] < e2e["dense"]["n_sources"]
    )
    for profile in e2e["profile"].values():
        assert _positive(profile["profiled_total_s"])
        for named in ("render (scaling, colour map, text)", "PNG encode (zlib)", "PNG file writes"):
            assert profile["parts"][named]["fraction"] > 0, (named, profile["parts"])
        assert sum(part["fraction"] for part in profile["parts"].values()) == pytest.approx(1.0, abs=0.05)
    assert _positive(e2e["read_crossover"]["whole_read_s"])


def test_memory_scaling_png_figures(tiny_result: tuple[dict, Path]) -> None:
    result = tiny_result[0]
    memory = result["memory"]
    assert _positive(memory["benchmark_process_peak_rss_mib"])
    assert _positive(memory["peak_rss_mib"])
    scaling = result["scaling"]
    assert [run["n_sources"] for run in scaling["runs"]] == list(PLANS["tiny"].scaling_counts)
    for run in [*scaling["runs"], scaling["njobs2"]]:
        assert _positive(run["wall_s"]) and _positive(run["ms_per_source"]) and _positive(run["peak_rss_mib"])
    assert scaling["njobs2"]["njobs"] == 2
    assert _positive(scaling["njobs2_speedup"])
    assert scaling["njobs2_pair_speedups"] == [scaling["njobs2_speedup"]] * PLANS["tiny"].njobs_pairs
    png = result["png"]
    assert [level["level"] for level in png["levels"]] == list(range(10))
    assert all(_positive(level["ms"]) and _positive(level["bytes"]) for level in png["levels"])
    assert _positive(png["mean_bytes_per_triplet"])
    assert png["levels"][0]["bytes"] > png["levels"][9]["bytes"]


def test_floor_typical_manifest_and_target_lines(tiny_result: tuple[dict, Path]) -> None:
    result = tiny_result[0]
    plan = PLANS["tiny"]
    for regime in ("dense", "sparse"):
        floor = result["end_to_end"][regime]["floor"]
        assert floor["planes_not_tiled"] == 0 and floor["tiles_decoded"] > 0, floor
        assert _positive(floor["ms_per_source"])
        fixed = floor["fixed"]
        assert fixed["visit_detectors"] == 1 and _positive(fixed["lookup_ms"]) and _positive(fixed["open_ms"])
        n = result["end_to_end"][regime]["n_sources"]
        assert fixed["ms_per_source"] == pytest.approx((fixed["lookup_ms"] + fixed["open_ms"]) / n, rel=1e-3)
    typical = result["typical"]
    assert typical["sources_per_exposure_max"] <= plan.typical_per_detector
    assert typical["ours"]["written"] == typical["n_sources"]
    assert _positive(typical["floor"]["ms_per_source"]) and _positive(typical["speedup_vs_original"])
    all_cores = typical["all_cores"]
    assert all_cores["cores"] == len(os.sched_getaffinity(0))
    assert all_cores["ours"]["written"] == typical["n_sources"]
    assert _positive(all_cores["ours"]["ms_per_source"])
    spread = result["sparse_spread"]
    assert spread["ours"]["n_sources"] == spread["n_sources"] and spread["detectors"] > 1
    assert spread["n_sources"] <= spread["detectors"] * plan.max_sparse_sources
    assert any(line.startswith("[7 sparse] ") for line in result["summary_lines"])
    manifests = result["manifests"]
    assert manifests["n_sources"] == plan.manifest_sources
    assert _positive(manifests["write_s"]) and _positive(manifests["peak_rss_mib"])
    # Every manifest line of the written rows, plus its header.
    assert manifests["bytes"]["manifest.csv"] > plan.manifest_sources * 40
    targets = [line for line in result["summary_lines"] if line.startswith("[target]")]
    for words in ("typical", "sparse", "dense", "render only", "njobs=2", "100,000 sources", "manifests of"):
        assert any(words in line for line in targets), (words, targets)
    assert all("target" in line.removeprefix("[target]") for line in targets)
    sparse_line = next(line for line in targets if "sparse" in line)
    assert "the libraries' fixed work" in sparse_line and "dataset lookup" in sparse_line, sparse_line
    flat = result["flat"]
    assert [r["n_sources"] for r in flat["runs"]] == list(plan.scale_counts)
    assert all(r["written"] + r["failed"] == r["n_sources"] for r in flat["runs"])
    assert _positive(flat["cpu_ratio"])
    assert not any("not measured" in line for line in targets)


def test_cached_repositories_are_reused(
    tiny_result: tuple[dict, Path], capsys: pytest.CaptureFixture
) -> None:
    """A second command-line run on the same directory reuses the repositories."""
    output = tiny_result[1]
    from benchmarks import benchmark

    repos = benchmark.prepare_repos(output / "repos", PLANS["tiny"], lambda line: None)
    assert repos["main"]["reused"] and repos["sparse"]["reused"]
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--quick" in capsys.readouterr().out
