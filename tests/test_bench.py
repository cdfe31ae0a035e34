"""The benchmark harness runs end to end on a tiny shape and writes its table (no timing asserts)."""

import csv

from tmac_ort import cli


def test_bench_writes_table_and_csv(tmp_path, capsys):
    assert cli.main(["bench", "--shapes", "256x128", "--m", "1", "3", "--bits", "1", "2", "--threads", "1",
                     "--rounds", "1", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    kernels = {r["kernel"] for r in rows}
    assert {"LutGemm 1b", "LutGemm 2b", "MatMulNBits 2b acc4", "MatMulNBits 2b LUT", "MatMul fp32"} <= kernels
    assert all(float(r["ms"]) > 0 for r in rows)
    table = (tmp_path / "bench.md").read_text()
    assert table.count("| 256×128 |") == 4
