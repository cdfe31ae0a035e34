"""custom_ops/tests/kernel_check.sh: every kernel of a target against the exact product and the
scalar kernel, compiled without ONNX Runtime (the same check runs the ARM kernels under qemu)."""

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
