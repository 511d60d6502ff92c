"""Running test code on several forced CPU devices: XLA fixes the device count when a process starts, so the code
runs in a fresh interpreter."""

import os
import subprocess
import sys


def forced_cpu_env(devices: int) -> dict:
    """The environment of a process that sees ``devices`` CPU devices."""
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")


def run_on_cpu_devices(code: str, devices: int, timeout: float) -> subprocess.CompletedProcess:
    """``python -c code`` on ``devices`` forced CPU devices; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-c", code], env=forced_cpu_env(devices), capture_output=True, text=True,
                          timeout=timeout)
