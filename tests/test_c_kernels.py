"""Build and run the standalone C kernel tests (tests/c/test_kernels.c).

The masking and UTF-8 kernels pick an implementation at run time (AVX2 / SSE2 / portable), so
running the extension's tests on one machine only ever exercises one of them. Here the C test
program is compiled once per variant, using the build-time knobs honoured by mask.c and utf8.c:

  dispatch  the normal build: whatever this CPU gets (AVX2 on most x86-64 machines)
  no-avx2   -DFEMTOWS_NO_AVX2: the SSE2 kernels (x86 only; portable elsewhere)
  scalar    -DFEMTOWS_FORCE_SCALAR: the portable kernels every non-x86 CPU runs
  sanitized the normal build under AddressSanitizer + UndefinedBehaviorSanitizer (skipped only
            when this toolchain has no sanitizer runtime)

A C compiler is required: the extension cannot be built without one either.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "femtows" / "_core"
TEST_SOURCE = ROOT / "tests" / "c" / "test_kernels.c"
SOURCES = [TEST_SOURCE, CORE / "mask.c", CORE / "utf8.c"]
WARNINGS = ["-Wall", "-Wextra", "-Werror"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
IS_X86 = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}


def _find_compiler() -> list[str]:
    """`cc` from PATH, else the compiler Python was built with (as sysconfig reports it)."""
    cc = shutil.which("cc")
    if cc:
        return [cc]
    configured = shlex.split(sysconfig.get_config_var("CC") or "")
    if configured and shutil.which(configured[0]):
        return configured
    pytest.fail(
        "no C compiler found: neither `cc` on PATH nor sysconfig's CC "
        f"({sysconfig.get_config_var('CC')!r}); install gcc or clang",
        pytrace=False,
    )


def _compile(cc: list[str], out: Path, flags: list[str], sources: list[Path]) -> None:
    cmd = [*cc, *flags, f"-I{CORE}", *map(str, sources), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"compilation failed ({shlex.join(cmd)}):\n{proc.stdout}{proc.stderr}"
    )


def _sanitizers_work(cc: list[str], tmp_path: Path) -> bool:
    """Can this toolchain build *and run* an ASan/UBSan program (runtime libraries present)?"""
    probe = tmp_path / "probe.c"
    probe.write_text("#include <stdlib.h>\nint main(void) { free(malloc(1)); return 0; }\n")
    exe = tmp_path / "probe"
    try:
        built = subprocess.run(
            [*cc, *SANITIZE, str(probe), "-o", str(exe)], capture_output=True, timeout=120
        )
        if built.returncode != 0:
            return False
        return subprocess.run([str(exe)], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _dispatch_expectation() -> str | None:
    """What the run-time dispatch should pick here, when /proc/cpuinfo can tell us."""
    if not IS_X86:
        return "scalar"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo, re.M)
    if not flags:
        return None
    # The kernel only lists avx2 when the OS enables YMM state, matching __builtin_cpu_supports.
    # UTF-8's AVX2 flavour also needs BMI2; every AVX2 CPU has it, so one answer covers both.
    return "avx2" if {"avx2", "bmi2"} <= set(flags.group(1).split()) else "sse2"


VARIANTS = {
    # name: (extra flags, expected "mask=... utf8=..." implementation, or None if unknown)
    "dispatch": ([], _dispatch_expectation()),
    "no-avx2": (["-DFEMTOWS_NO_AVX2"], "sse2" if IS_X86 else "scalar"),
    "scalar": (["-DFEMTOWS_FORCE_SCALAR"], "scalar"),
    "sanitized": ([*SANITIZE, "-g"], _dispatch_expectation()),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_c_kernels(variant: str, tmp_path: Path) -> None:
    cc = _find_compiler()
    extra, expected_impl = VARIANTS[variant]
    if variant == "sanitized" and not _sanitizers_work(cc, tmp_path):
        pytest.skip("the C compiler has no AddressSanitizer/UBSan runtime")

    exe = tmp_path / f"test_kernels_{variant}"
    _compile(cc, exe, ["-O2", *WARNINGS, *extra], SOURCES)

    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{variant}: test_kernels exited {proc.returncode}:\n{output}"
    assert re.search(r"^OK: \d+ checks$", proc.stdout, re.M), output

    impl = re.search(r"mask=(\w+) utf8=(\w+)", proc.stdout)
    assert impl, output
    if expected_impl is not None:
        assert impl.groups() == (expected_impl, expected_impl), output


@pytest.mark.parametrize("force_scalar", [False, True], ids=["dispatch", "scalar"])
def test_c_kernels_strict_warnings(force_scalar: bool, tmp_path: Path) -> None:
    """The kernels themselves stay clean under strict C99 and conversion warnings."""
    cc = _find_compiler()
    flags = ["-std=c99", "-pedantic-errors", "-O2", *WARNINGS, "-Wconversion", "-Wshadow", "-c"]
    if force_scalar:
        flags.append("-DFEMTOWS_FORCE_SCALAR")
    for source in (CORE / "mask.c", CORE / "utf8.c"):
        _compile(cc, tmp_path / (source.stem + ".o"), flags, [source])
