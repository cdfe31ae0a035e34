"""custom_ops/tests/kernel_check.sh: every kernel of a target against the exact product and the
scalar kernel, compiled without ONNX Runtime (the same check runs the ARM kernels under qemu)."""

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "custom_ops" / "tests" / "kernel_check.sh"


def run(target: str, tmp_path, **env):
    done = subprocess.run(["bash", str(SCRIPT), target], capture_output=True, text=True,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "KERNEL_CHECK_BUILD": str(tmp_path), **env})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_this_machines_kernels(tmp_path):
    out = run("native", tmp_path)
    assert "0 failed" in out and "scalar " in out


@pytest.mark.skipif(platform.machine() != "x86_64" or not shutil.which("qemu-x86_64"),
                    reason="needs an x86-64 machine and qemu-user (make test-arm installs it)")
def test_x86_kernels_on_cpus_without_avx512_and_without_avx2(tmp_path):
    """The run-time choice never runs an instruction the CPU lacks: under qemu as a Haswell (no
    AVX-512) and a Nehalem (no AVX2) the kernels it lacks are skipped and the rest pass."""
    out = run("x86-older", tmp_path)
    haswell, nehalem = out.split("== qemu-x86_64 -cpu Nehalem")
    all_cases = r"\s+(\d+) of \1 cases within the bounds"
    # the listing (the com.tmac.Kernels op's) asks nothing of a kernel the CPU lacks: on a Zen 3
    # it once copied the AVX-512 kernel's function table and died of SIGILL
    assert re.search(r"listed avx512vnni +int8 from rows 0 0 0 0 \(1-4 bits\); this CPU lacks", haswell)
    assert re.search(r"listed avx2 +int8 from rows( \d+){4} \(1-4 bits\)\n", haswell)
    assert "avx512vnni     skipped: this CPU lacks" in haswell and re.search("avx2" + all_cases, haswell)
    assert "avx2           skipped: this CPU lacks" in nehalem and re.search("scalar" + all_cases, nehalem)
    assert haswell.count("0 failed") == 1 and nehalem.count("0 failed") == 1


ARM_TOOLS = shutil.which("aarch64-linux-gnu-g++") and shutil.which("qemu-aarch64")


@pytest.mark.parametrize("compiler", [
    "gcc",
    pytest.param("clang", marks=pytest.mark.skipif(not shutil.which("clang++"), reason="clang++ not installed")),
])
@pytest.mark.skipif(not ARM_TOOLS,
                    reason="ARM kernels not checked: needs g++-aarch64-linux-gnu and qemu-user (make test-arm installs them)")
def test_arm_kernels_under_qemu_with_and_without_the_dot_product(tmp_path, compiler):
    out = run("aarch64", tmp_path, **({"AARCH64_CXX": "clang++ --target=aarch64-linux-gnu"} if compiler == "clang" else {}))
    a53, cpu_max = out.split("== qemu-aarch64 -cpu max")
    all_cases = r"\s+(\d+) of \1 cases within the bounds"
    assert "neon-dotprod   skipped: this CPU lacks the dot-product extension" in a53  # plain NEON path alone
    assert re.search("neon" + all_cases, a53) and "0 failed" in a53
    assert re.search("neon-dotprod" + all_cases, cpu_max) and re.search(r"\nneon" + all_cases, cpu_max)
    assert "0 failed" in cpu_max
