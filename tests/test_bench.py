"""The benchmark harness runs end to end on a tiny shape and writes its table (no timing asserts)."""

import csv

import tmac_ort
from tmac_ort.reference import relative_rms
from tmac_ort import cli


def test_bench_writes_table_and_csv(tmp_path, capsys):
    assert cli.main(["bench", "--shapes", "256x128", "--m", "1", "3", "--bits", "1", "2", "--threads", "1",
                     "--rounds", "1", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    kernels = {r["kernel"] for r in rows}
    best = tmac_ort.available_kernels()[0]  # the default LutGemm kernel is named
    assert {f"LutGemm 1b {best}", f"LutGemm 2b {best}", "MatMulNBits 2b acc4", "MatMulNBits 2b LUT",
            "MatMul fp32"} <= kernels
    assert all(float(r["ms"]) > 0 for r in rows)
    table = (tmp_path / "bench.md").read_text()
    assert table.count("| 256×128 |") == 4


def test_ternary_contenders_compute_the_same_product():
    """The ternary comparison is fair only if LutGemm and MatMulNBits hold the same weights."""
    import numpy as np

    from tmac_ort import bench

    rng = np.random.default_rng(0)
    cs, ternary = bench.ternary_contenders((rng.standard_normal((128, 256)) * 0.02).astype(np.float32), 1)
    assert set(np.unique(np.round(ternary / np.abs(ternary).max(axis=1, keepdims=True), 6))) == {-1.0, 0.0, 1.0}
    a = rng.standard_normal((1, 256)).astype(np.float32)
    exact = a.astype(np.float64) @ ternary.T.astype(np.float64)
    for c in cs:
        y = c.session.run(None, {"A": a})[0]
        assert relative_rms(y, exact) < 0.02, c.name


def test_cold_mode_empties_the_caches_before_every_timed_call():
    import numpy as np

    from tmac_ort import bench

    rng = np.random.default_rng(0)
    cs = bench.contenders((rng.standard_normal((128, 256)) * 0.02).astype(np.float32), 2, 32, 1)
    evictions = []
    times = bench.time_interleaved(cs, rng.standard_normal((1, 256)).astype(np.float32), 3, 50,
                                   evict=lambda: evictions.append(1))
    assert len(evictions) == 3 * len(cs) and all(t > 0 for t in times)


def test_cold_table_says_how_it_was_timed(tmp_path):
    assert cli.main(["bench", "--shapes", "256x128", "--m", "1", "--bits", "2", "--threads", "1",
                     "--rounds", "1", "--cold", "--out", str(tmp_path)]) == 0
    assert "cold: caches emptied" in (tmp_path / "bench.md").read_text()


def test_stream_mode_runs_each_call_on_the_next_copy_of_the_weights():
    """--stream: every contender holds copies of its weights adding up to the bytes asked for,
    and every timed call runs the next copy."""
    import numpy as np

    from tmac_ort import bench

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((128, 256)) * 0.02).astype(np.float32)
    cs = bench.contenders(w, 2, 32, 1, stream_bytes=40_000)
    for c in cs:
        assert len(c.sessions) == -(-40_000 // c.weight_bytes)
        assert (len(c.sessions) - 1) * c.weight_bytes < 40_000 <= len(c.sessions) * c.weight_bytes
    assert len(cs[0].sessions) == 4  # 128 x 256 at 2 bits (8192 bytes) + an fp16 scale per 32 (2048)
    runs = []

    class Counted:
        def __init__(self, session):
            self.session = session

        def run(self, *args):
            runs.append(self)
            return self.session.run(*args)

    lut = cs[0]
    lut.sessions = [Counted(s) for s in lut.sessions]
    a = rng.standard_normal((1, 256)).astype(np.float32)
    bench.time_interleaved([lut], a, 3, 50, stream=True)
    assert runs == lut.sessions * 4  # the first runs, then one per copy in each of 3 rounds
    for s in lut.sessions[1:]:  # the copies compute the same product
        np.testing.assert_array_equal(s.run(None, {"A": a})[0], lut.sessions[0].run(None, {"A": a})[0])


def test_stream_table_says_how_it_was_timed(tmp_path):
    assert cli.main(["bench", "--shapes", "256x128", "--m", "1", "--bits", "2", "--threads", "1",
                     "--rounds", "1", "--stream", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "bench.md").read_text()
    assert "stream: each call on the next of several copies" in table and "ratio at the read bandwidth" in table


def test_zero_point_contenders_share_asymmetric_weights():
    """--zero-points: LutGemm and ORT get the same asymmetric weights, and agree on them."""
    import numpy as np

    from tmac_ort import bench

    rng = np.random.default_rng(0)
    cs = bench.contenders((rng.standard_normal((64, 256)) * 0.02).astype(np.float32), 4, 32, 1, zero_points=True)
    feed = {"A": rng.standard_normal((1, 256)).astype(np.float32)}
    lut = cs[0].session.run(None, feed)[0]
    exact_ort = next(c for c in cs if c.name == "MatMulNBits 4b acc0").session.run(None, feed)[0]
    assert np.abs(lut - exact_ort).max() < 0.05 * np.abs(exact_ort).max()
    # a zero point per group (32 weights) as a nibble beside the fp16 scale: 4 + 0.5 + 0.125 bits
    assert cs[0].weight_bytes == 64 * 256 * 4.625 / 8



def test_bench_times_every_kernel_named(tmp_path):
    names = tmac_ort.available_kernels()
    assert cli.main(["bench", "--shapes", "256x128", "--m", "1", "--bits", "2", "--threads", "1", "--rounds", "1",
                     "--kernel", *names, "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    assert [r["kernel"] for r in rows if r["kernel"].startswith("LutGemm")] == [f"LutGemm 2b {n}" for n in names]
    assert f"({names[0]})" in (tmp_path / "bench.md").read_text()


def test_bench_says_which_rows_took_the_int8_path(tmp_path):
    kernels = [k for k in tmac_ort.kernel_registry() if k.available]
    rows_needed = max([k.int8_rows(4) for k in kernels] + [1])
    assert cli.main(["bench", "--shapes", "256x128", "--m", "1", str(rows_needed), "--bits", "2", "4", "--threads",
                     "1", "--rounds", "1", "--kernel", *[k.name for k in kernels], "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    labels = {(int(r["M"]), int(r["bits"]), r["kernel"]) for r in rows if r["kernel"].startswith("LutGemm")}
    expected = {(M, bits, f"LutGemm {bits}b {k.name}" + (" int8" if 0 < k.int8_rows(bits) <= M else ""))
                for k in kernels for bits in (2, 4) for M in (1, rows_needed)}
    assert labels == expected


def test_bench_refuses_a_kernel_it_cannot_run(capsys):
    assert cli.main(["bench", "--kernel", "sparc"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bench: kernel sparc: not in this build" in err


def test_ternary_ratios_are_the_fastest_lut_gemm_layouts():
    """On a CPU whose kernel has no layout-3 code (AVX2) the triples run the scalar kernel's:
    the ratios must be those of the layout a user would run, never of ORT or llama.cpp."""
    from tmac_ort import bench

    medians = {"LutGemm ternary triples avx2": 35.4, "LutGemm ternary planes avx2": 0.66,
               "MatMulNBits 2b acc4": 0.5, "llama.cpp TQ2_0": 0.4}
    assert bench.fastest_lut_gemm(medians) == "LutGemm ternary planes avx2"
    medians["LutGemm ternary triples avx2"] = 0.6
    assert bench.fastest_lut_gemm(medians) == "LutGemm ternary triples avx2"


def test_ternary_comparison_times_another_build_beside_this_one(tmp_path):
    """--ternary --compare-library: the other build's triples and planes join the contenders,
    named by its folder, and hold the same weights (the same product)."""
    import shutil

    import numpy as np

    from tmac_ort import bench

    other = tmp_path / "other-build"
    other.mkdir()
    shutil.copy(tmac_ort.get_library_path(), other / "libtmac_ort_ops.so")
    rng = np.random.default_rng(1)
    cs, ternary = bench.ternary_contenders((rng.standard_normal((96, 256)) * 0.02).astype(np.float32), 1,
                                           other_libraries=[str(other / "libtmac_ort_ops.so")])
    names = [c.name for c in cs]
    assert "LutGemm ternary triples [other-build]" in names and "LutGemm ternary planes [other-build]" in names
    a = rng.standard_normal((1, 256)).astype(np.float32)
    exact = a.astype(np.float64) @ ternary.T.astype(np.float64)
    for c in cs:
        assert relative_rms(c.session.run(None, {"A": a})[0], exact) < 0.02, c.name


def test_another_build_that_reads_only_layout_1_gets_layout_1(tmp_path, monkeypatch):
    """--compare-library with a build older than layout 2 (the third session's, which a Zen 3
    regression run times against): its sessions get the same weights in layout 1, and its
    name says so; a build that reads layout 2 gets layout 2."""
    import shutil

    import importlib
    from pathlib import Path

    import numpy as np
    from onnx import helper

    contenders_module = importlib.import_module("tmac_ort.bench.contenders")  # (the package's name is the function)

    old = tmp_path / "old-build"
    new = tmp_path / "new-build"
    for folder in (old, new):
        folder.mkdir()
        shutil.copy(tmac_ort.get_library_path(), folder / "libtmac_ort_ops.so")
    real_session = contenders_module._session
    layouts_opened = {}

    def session_as_an_old_build_would_open(model, threads, extra_config=None, library=False, kernel=None):
        attrs = {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute} if library else {}
        if isinstance(library, str):
            layouts_opened.setdefault(Path(library).parent.name, set()).add(attrs["layout_version"])
        if library == str(old / "libtmac_ort_ops.so") and attrs["layout_version"] != 1:
            raise RuntimeError(f"com.tmac.LutGemm node 'lut_gemm': layout_version {attrs['layout_version']} "
                               "is not supported (this library reads 1)")
        return real_session(model, threads, extra_config, library, kernel)

    monkeypatch.setattr(contenders_module, "_session", session_as_an_old_build_would_open)
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((64, 256)) * 0.02).astype(np.float32)
    cs = contenders_module.contenders(w, 2, 128, 1, other_libraries=[str(old / "libtmac_ort_ops.so"),
                                                                     str(new / "libtmac_ort_ops.so")])
    names = [c.name for c in cs]
    assert "LutGemm 2b [old-build, layout 1]" in names and "LutGemm 2b [new-build]" in names
    assert layouts_opened == {"old-build": {2, 1}, "new-build": {2}}
    a = rng.standard_normal((1, 256)).astype(np.float32)
    y = {c.name: c.session.run(None, {"A": a})[0] for c in cs}
    np.testing.assert_array_equal(y["LutGemm 2b [old-build, layout 1]"], y["LutGemm 2b [new-build]"])
