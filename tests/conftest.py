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


@pytest.fixture(scope="session", autouse=True)
def _offline_data_dir(tmp_path_factory):
    """Datasets are generated once per test session into a temporary TFDS data_dir."""
    import os

    path = os.environ.get("CNNJAX_TEST_DATA_DIR") or str(tmp_path_factory.mktemp("tfds"))
    old = os.environ.get("CNNJAX_DATA_DIR")
    os.environ["CNNJAX_DATA_DIR"] = path
    yield path
    if old is None:
        os.environ.pop("CNNJAX_DATA_DIR", None)
    else:
        os.environ["CNNJAX_DATA_DIR"] = old
