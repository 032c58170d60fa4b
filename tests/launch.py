"""`accelerate launch` with two real gloo ranks on CPU, for the multi-process tests.

`accelerate launch --cpu --num_processes 2` silently runs ONE process (see the stack notes); this is the launch
that really starts two.
"""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch(args: list[str], cwd: Path, timeout: int = 300, config_file: Path | None = None
                      ) -> subprocess.CompletedProcess:
    """Run `accelerate launch` on 2 CPU processes; fail the test with its output if it fails or hangs.

    With `config_file` (e.g. the 4-GPU recipe) its settings apply, with the process count cut to 2.
    """
    launch = ["--config_file", str(config_file)] if config_file else [
        "--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command = [str(Path(sys.executable).with_name("accelerate")), "launch", *launch, "--num_processes", "2",
               "--main_process_port", str(free_port()), *args]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    # A session of its own, so that a timeout ends the launcher's worker processes too.
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"accelerate launch timed out after {timeout} s:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    assert process.returncode == 0, stdout[-3000:] + stderr[-5000:]
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
