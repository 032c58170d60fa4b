"""lavt_hf.training.memory: with gradient checkpointing on CPU, freed activation blocks go back to the system."""

import ctypes
import os
import platform
import subprocess
import sys

import pytest

from lavt_hf.training import memory
from tests.conftest import REPO_ROOT

# A freed 30 MiB mapping raises glibc's dynamic threshold to 30 MiB, so that an 8 MiB block then comes from the
# heap (its pages stay resident after free) unless the threshold was fixed lower.
PROBE = """
import sys, torch
from lavt_hf.training.memory import malloc_statistics, return_freed_blocks_to_system
mallinfo2 = malloc_statistics()
first = torch.empty(30 * 2**20, dtype=torch.uint8)
del first
applied = return_freed_blocks_to_system() if sys.argv[1] == "fix" else None
before = mallinfo2().hblkhd
block = torch.empty(8 * 2**20, dtype=torch.uint8)
print(applied, (mallinfo2().hblkhd - before) / 2**20)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_fixed_threshold_maps_mid_sized_blocks():
    environment = {k: v for k, v in os.environ.items() if k != memory.ENVIRONMENT_VARIABLE}

    def mapped_mib(mode: str) -> tuple[str, float]:
        result = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO_ROOT, env=environment,
                                capture_output=True, text=True, check=True)
        applied, mapped = result.stdout.split()
        return applied, float(mapped)

    assert mapped_mib("default") == ("None", 0.0)  # from the heap
    applied, mapped = mapped_mib("fix")
    assert int(applied) == memory.MMAP_THRESHOLD_BYTES and mapped >= 8


def test_the_environment_setting_wins(monkeypatch):
    def no_mallopt(*args):
        raise AssertionError("mallopt must not be called when the environment sets the threshold")

    monkeypatch.setenv(memory.ENVIRONMENT_VARIABLE, "1048576")
    monkeypatch.setattr(ctypes, "CDLL", no_mallopt)
    assert memory.configured_mmap_threshold() == 1048576
    assert memory.return_freed_blocks_to_system() == 1048576


def test_other_c_libraries_are_left_alone(monkeypatch):
    def missing(*args):
        raise OSError("libc.so.6: cannot open shared object file")

    monkeypatch.delenv(memory.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert memory.configured_mmap_threshold() is None
    assert memory.return_freed_blocks_to_system() is None
