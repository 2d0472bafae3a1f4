"""Start-up steps of the cluster back end: connecting to PostgreSQL and checking the embedding space."""

from __future__ import annotations

from service.config import GallerySettings
from service.errors import GalleryError
from service.gallery.cluster.postgres import PostgresStore

FLOAT32_BYTES = 4


def open_store(settings: GallerySettings) -> PostgresStore:
    cluster = settings.cluster
    try:
        return PostgresStore(cluster.postgres_dsn, cluster.name, pool_size=cluster.pool_size,
                             timeout_s=cluster.timeout_s)
    except Exception as error:  # psycopg's and the pool's errors: the server is down, refuses us, times out
        raise GalleryError(f"cannot open the PostgreSQL gallery {cluster.name}: {error}") from error


def check_embedding_space(store: PostgresStore, name: str, embedding_dim: int, model_id: str) -> None:
    """Refuses to mix two models' (or sizes') embeddings; records the space of an empty gallery."""
    models, sizes = store.embedding_spaces()
    if sizes and sizes != {embedding_dim * FLOAT32_BYTES}:
        stored = sorted(size // FLOAT32_BYTES for size in sizes)
        raise GalleryError(f"the gallery {name} holds embeddings of size {stored}, the embedder gives "
                           f"{embedding_dim}", stored_dims=stored, embedding_dim=embedding_dim)
    if models and models != {model_id}:
        raise GalleryError(f"the gallery {name} was embedded by {sorted(models)}, the loaded embedder is "
                           f"{model_id!r}; to embed it again, `shitu gallery migrate` it to an embedded gallery, "
                           "run `shitu gallery reembed` there and migrate it back", stored_models=sorted(models),
                           model_id=model_id)
    with store.transaction() as connection:
        store.set_meta(connection, "embedding_dim", str(embedding_dim))
        store.set_meta(connection, "model_id", model_id)


def read_cluster_embedding_space(settings: GallerySettings) -> tuple[int, str]:
    store = open_store(settings)
    try:
        embedding_dim, model_id = store.get_meta("embedding_dim"), store.get_meta("model_id")
    finally:
        store.close()
    if embedding_dim is None or model_id is None:
        raise GalleryError(f"no gallery {settings.cluster.name} in PostgreSQL (never opened with an embedder)")
    return int(embedding_dim), model_id
