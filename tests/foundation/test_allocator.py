"""retain_freed_memory: glibc reuses freed large blocks instead of faulting in fresh pages."""
import os
import subprocess
import sys
import textwrap

import pytest

from convnet.kernels import allocator

_GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc") if hasattr(
    os, "confstr") else False

# Allocates, touches and frees 40 MiB and 8 MiB arrays 10 times (first touch of a fresh page
# is a minor fault) and prints the faults, before and after retain_freed_memory().
_PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from convnet.kernels.allocator import retain_freed_memory

    def faults():
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            a = np.empty(10 * 2**20, np.float32); a.fill(1)
            b = np.empty(2 * 2**20, np.float32); b.fill(2)
            del a, b
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0

    before = faults()
    applied = retain_freed_memory()
    faults()  # the first round after the change maps the blocks once
    print(before, applied, faults())
""")


@pytest.mark.skipif(not _GLIBC, reason="mallopt thresholds exist only in glibc")
def test_freed_blocks_are_reused_without_page_faults():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True, env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "",
                                          "MALLOC_TRIM_THRESHOLD_": ""}).stdout.split()
    before, applied, after = int(out[0]), out[1], int(out[2])
    assert applied == "True"
    # 48 MiB per round: glibc's defaults map (and fault in) the 40 MiB block afresh every
    # round, ~10,000 small pages or ~20 huge ones per round where transparent huge pages are on
    assert before > 100, before
    assert after * 10 < before, (before, after)


def test_bad_thresholds_are_rejected():
    with pytest.raises(ValueError, match="retain_freed_memory: thresholds must be >= 0"):
        allocator.retain_freed_memory(mmap_threshold=-1)


def test_no_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(allocator, "_libc", lambda: None)
    assert allocator.retain_freed_memory() is False


def test_cli_opts_in_unless_told_not_to(monkeypatch):
    from convnet.cli import main as cli_main

    calls = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.delenv("CONVNET_RETAIN_MEMORY", raising=False)
    cli_main._retain_memory()
    monkeypatch.setenv("CONVNET_RETAIN_MEMORY", "0")
    cli_main._retain_memory()
    assert calls == [1]
