from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ClusterServers, PostgresServer

# Reference outputs of PaddleClas and PaddleDetection themselves, kept in the repo so that a clone passes alone.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PARITY = FIXTURES / "ppshitu_parity"
END_TO_END = FIXTURES / "ppshitu_e2e"


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """Network outputs of the original model code for the fixture weights (its README says how they were made)."""
    return PARITY


@pytest.fixture(scope="session")
def end_to_end_dir() -> Path:
    """PaddleClas's own ``predict_system`` output on a gallery list and 14 queries (its README)."""
    return END_TO_END


def _export_test_detector(out_dir: Path) -> None:
    """A small PicoDet-LCNet whose head is set to fire on the stride-64 level: untrained, but a real exported
    network whose boxes are deterministic, so the detector path of the service runs end to end."""
    import paddle

    from trainer.detection.export import export_detector
    from trainer.models.picodet import build_picodet

    paddle.seed(7)
    model = build_picodet(scale=0.35)
    state = model.state_dict()
    for level in range(4):
        weight, bias = state[f"head.head_cls{level}.weight"], state[f"head.head_cls{level}.bias"]
        weight_values, bias_values = weight.numpy(), bias.numpy()
        weight_values[:] = 0.0
        bias_values[:] = 0.0
        bias_values[0] = 4.0 if level == 3 else -10.0
        weight.set_value(weight_values)
        bias.set_value(bias_values)
    export_detector(model, out_dir, name="test-detector", version="1", input_size=320,
                    provenance={"purpose": "tests: untrained, head biased to fire on the stride-64 level"})


@pytest.fixture(scope="session")
def model_store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``embedder/default`` (EfficientNet-Lite0, real ImageNet weights + BNNeck) and ``detector/default``
    (see above), both exported by the trainer and loaded by the service unchanged."""
    from trainer.recognition.export import export_imagenet_embedder

    store = tmp_path_factory.mktemp("model_store")
    export_imagenet_embedder(store / "embedder" / "default")
    _export_test_detector(store / "detector" / "default")
    return store


@pytest.fixture(scope="session")
def model_environment(model_store_dir: Path) -> dict[str, str]:
    """``SHITU_*`` variables that point the service at the test store, its detector included, on 1 thread."""
    return {
        "SHITU_MODELS__STORE": str(model_store_dir),
        "SHITU_MODELS__DETECTOR": "detector/default",
        "SHITU_RUNTIME__CPU_THREADS": "1",
    }


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer.start()
    except RuntimeError as error:
        if os.environ.get("CI"):  # CI installs the server (scripts/install-postgresql.sh): it must start
            raise
        pytest.skip(f"cannot start a PostgreSQL server here: {error}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster_servers(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterServers]:
    """milvus-lite runs in this process (a ``.db`` path): pymilvus starts its gRPC server in a thread."""
    from milvus_lite.server_manager import server_manager_instance

    milvus_dir = tmp_path_factory.mktemp("milvus")
    yield ClusterServers(postgres_dsn=postgres_server.dsn, milvus_uri=str(milvus_dir / "milvus.db"))
    server_manager_instance.release_all()  # now, while pytest's log streams are still open
