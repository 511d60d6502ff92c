import numpy as np
import pytest
from hypothesis import settings

# jit compiles per new shape, so property tests use few, deterministic examples.
settings.register_profile("cnnjax", deadline=None, max_examples=15, derandomize=True, print_blob=True)
settings.load_profile("cnnjax")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def torch():
    """PyTorch as an optional oracle: the test is skipped cleanly where it is not installed."""
    torch = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(torch.float32)
