"""One typed settings tree, read from ``SHITU_*`` environment variables (``__`` nests groups).

Only ``service.app`` and the CLI call :func:`get_settings`; everything else receives the values it
needs through its constructor.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Device(str, Enum):
    cpu = "cpu"
    gpu = "gpu"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


class WholeImage(str, Enum):
    """When the whole image joins the candidate boxes (PP-ShiTu: always)."""

    always = "always"
    fallback = "fallback"
    never = "never"


class IndexKind(str, Enum):
    flat = "flat"
    hnsw = "hnsw"
    auto = "auto"  # flat below gallery.exact_max_images, HNSW from there


def cpu_count() -> int:
    """The cores this process may use (the affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_cpu_threads() -> int:
    # Measured on 2 shared cores (docs/performance.md): one math thread per inference worker and one worker per
    # core serve best, alone and under load (OpenMP teams sharing cores with other threads stall each other).
    return 1


class GalleryBackend(str, Enum):
    """Where a gallery lives: ``embedded`` (SQLite + faiss in this process, one process per gallery) or
    ``cluster`` (vectors in Milvus, rows in PostgreSQL, image files on a shared volume: any number of replicas)."""

    embedded = "embedded"
    cluster = "cluster"


class ClusterSettings(BaseModel):
    """The ``cluster`` back end's servers. One PostgreSQL schema and one Milvus collection, both named ``name``,
    hold one gallery, so several galleries can share the servers."""

    milvus_uri: str = Field("http://localhost:19530", description="Milvus address; a local file path runs "
                            "milvus-lite in this process (tests, one process only)")
    milvus_token: str | None = Field(None, description="Milvus credentials (user:password or an API key)")
    milvus_index: str = Field("FLAT", pattern=r"^(FLAT|HNSW|IVF_FLAT|AUTOINDEX)$",
                              description="Milvus vector index; FLAT is exact")
    postgres_dsn: str = Field("postgresql://shitu@localhost/shitu", description="libpq connection string")
    name: str = Field("shitu_gallery", pattern=r"^[a-z_][a-z0-9_]{0,47}$",
                      description="PostgreSQL schema and Milvus collection of this gallery")
    pool_size: int = Field(8, ge=1, description="PostgreSQL connections per replica")
    timeout_s: float = Field(10.0, gt=0, description="Milvus call and PostgreSQL connect timeout")


class RuntimeSettings(BaseModel):
    """How Paddle Inference runs the models."""

    device: Device = Device.cpu
    cpu_threads: int = Field(default_factory=default_cpu_threads, ge=1,
                             description="math threads per predictor under load (default 1: one worker per core)")
    # Off by default: measured on this shared 2-core machine (docs/performance.md), a lone request on 2 OpenMP
    # threads was 3-6x slower than on 1 whenever other processes held the cores; on a dedicated machine set it
    # to the core count.
    lone_cpu_threads: int | None = Field(
        None, ge=1, description="math threads for a batch that runs alone (no other request in flight, no other "
        "worker busy), on predictors of its own; None: cpu_threads (no separate predictors)"
    )
    onednn: bool = Field(True, description="oneDNN (MKLDNN) kernels on CPU")
    # Off by default: measured on an AVX512-BF16 CPU (docs/performance.md, bench/precision.py), bf16 keeps
    # recall@1 but its features are only at cosine 0.992 (mean) of fp32, short of the 0.999 the gallery's
    # stored embeddings need to stay interchangeable.
    onednn_bf16: bool | None = Field(
        False, description="bf16 oneDNN kernels for the embedder: True, False, or None (on where the CPU has AMX "
        "or AVX512-BF16, checked at start and shown in /info; fp32 elsewhere)"
    )
    onednn_cache_capacity: int = Field(
        40, ge=1, description="input shapes whose oneDNN kernels a predictor keeps; batches of every size up to "
        "batching.max_embedder_batch should fit, or each new size rebuilds the kernels"
    )
    gpu_id: int = 0
    gpu_memory_mb: int = Field(1024, ge=64, description="initial GPU memory pool")
    tensorrt: bool = Field(False, description="TensorRT subgraphs on GPU")
    tensorrt_precision: Precision = Precision.fp32
    tensorrt_workspace_mb: int = Field(1024, ge=16)
    tensorrt_max_batch: int = Field(8, ge=1, description="largest embedder batch in the TensorRT dynamic shape")
    tensorrt_cache_dir: Path | None = Field(None, description="where TensorRT engines are serialised")
    warmup: bool = Field(True, description="run each model once at start-up")


class ModelSettings(BaseModel):
    """Which model directories the service loads."""

    store: Path = Field(Path("model_store"), description="root of the model store")
    embedder: str = Field("embedder/default", description="embedder directory, absolute or relative to the store")
    # The shipped main-body detector (EfficientNet-Lite0 PicoDet trained on `shitu data synth`, see the README);
    # `shitu models pull ppshituv2-det` and SHITU_MODELS__DETECTOR=detector/ppshituv2-det serve the official one.
    detector: str | None = Field(
        "detector/default", description="detector directory, absolute or relative to the store; empty: whole image only"
    )

    def resolve(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.store / path

    @property
    def embedder_dir(self) -> Path:
        return self.resolve(self.embedder)

    @property
    def detector_dir(self) -> Path | None:
        return self.resolve(self.detector) if self.detector else None


class MinScoreSource(str, Enum):
    manifest = "manifest"  # calibrated on validation classes by `shitu eval --record`
    gallery = "gallery"  # suggested by the gallery's own images (service/gallery/threshold.py)


class PipelineSettings(BaseModel):
    """The one holder of the defaults of ``POST /recognize``; ``None`` means: take the model manifest's value."""

    detection_threshold: float | None = Field(None, ge=0.0, le=1.0)
    max_detections: int | None = Field(None, ge=1, le=100)
    min_score: float | None = Field(None, ge=-1.0, le=1.0, description="cosine score a match needs")
    min_score_source: MinScoreSource = Field(
        MinScoreSource.manifest,
        description="where the default min_score comes from when min_score is not set: the embedder manifest's "
        "calibration, or the gallery's own suggestion (/info gallery_threshold; the manifest's until the gallery "
        "has gallery.threshold_min_items items)",
    )
    whole_image: WholeImage = WholeImage.always
    top_k: int = Field(5, ge=1, le=100, description="distinct items returned per object")
    nms_iou: float = Field(0.05, ge=0.0, le=1.0, description="IoU above which a lower-scored result is dropped")
    max_objects: int = Field(20, ge=1, le=100)
    include_unknown: bool = Field(True, description="also return detected objects without a match")
    max_batch_size: int = Field(16, ge=1, description="largest batch of crops per embedder call")
    sliding_windows: bool = Field(False, description="also embed square windows: several products without a detector")
    window_scales: tuple[float, ...] = Field(
        (0.35, 0.5, 0.7), min_length=1, description="window sides as fractions of the photo's shorter side"
    )

    @field_validator("window_scales")
    @classmethod
    def _scales_are_fractions(cls, scales: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0.05 <= scale <= 1.0 for scale in scales):
            raise ValueError("window scales are fractions of the shorter side, from 0.05 to 1")
        return scales


class BatchingSettings(BaseModel):
    """Cross-request batching: concurrent requests' crops go to the embedder as one batch, detector inputs of one
    size to the detector likewise."""

    max_wait_ms: float = Field(
        3.0, ge=0.0, le=100.0, description="how long a batch waits for more work; only while other requests "
        "are in flight and not yet queued (a lone request never waits)"
    )
    max_embedder_batch: int = Field(32, ge=1, description="largest embedder batch, in crops, across requests")
    max_detector_batch: int = Field(4, ge=1, description="largest detector batch, in images (1: no batching)")


class GallerySettings(BaseModel):
    path: Path = Field(Path("data/gallery"), description="directory of the image files (and of the SQLite store of "
                       "the embedded back end); a volume every replica mounts for the cluster back end")
    backend: GalleryBackend = GalleryBackend.embedded
    cluster: ClusterSettings = ClusterSettings()
    index: IndexKind = Field(IndexKind.auto, description="embedded back end: flat (exact), hnsw, or auto: flat below "
                             "exact_max_images, HNSW from there (switched by a background rebuild when a gallery grows "
                             "past it)")
    exact_max_images: int = Field(
        50_000, ge=1, description="auto: exact search up to this many images (about 2 ms a query on one core at "
        "512-d), HNSW above"
    )
    hnsw_m: int = Field(32, ge=4, le=128)
    hnsw_ef_search: int = Field(64, ge=8)
    hnsw_ef_construction: int = Field(160, ge=8, description="graph quality: 40 caps recall@1 near 0.98 at 1M")
    rebuild_deleted_fraction: float = Field(0.2, gt=0.0, le=1.0, description="HNSW rebuild trigger")
    search_threads: int = Field(1, ge=1, description="faiss OpenMP threads; requests already search in parallel")
    detect_on_enroll: bool = Field(True, description="crop the main object when a detector is loaded")
    # The gallery's own min_score suggestion (service/gallery/threshold.py), shown in /info and used with
    # pipeline.min_score_source=gallery.
    threshold_quantile: float = Field(0.5, gt=0.0, lt=1.0,
                                      description="quantile of the images' best scores against other items")
    threshold_max_images: int = Field(2000, ge=2, description="images sampled (evenly) and searched for the estimate")
    threshold_min_items: int = Field(10, ge=2, description="fewer items: no suggestion (the manifest's applies)")
    threshold_refresh_s: float = Field(30.0, ge=0.0, description="an estimate is recomputed at most this often")
    demo: Path | None = Field(None, description="PaddleClas list file imported when the gallery is empty")


class LimitsSettings(BaseModel):
    max_upload_mb: float = Field(20.0, gt=0, description="largest body, checked from Content-Length and while read")
    max_image_pixels: int = Field(
        16_777_216, ge=1, description="largest DECODED image (width x height): PP-ShiTu works at 640 px"
    )
    max_image_side_px: int = Field(16_384, ge=16, description="largest declared side, before any decoding")
    decode_max_side_px: int | None = Field(
        640, ge=64, description="JPEGs are decoded at 1/2, 1/4 or 1/8 (DCT scaling) while the longer side stays "
        "at least this (2x the detector's 320 px; a product a sixth of the photo wide still gives the embedder its "
        "176 px); boxes are still in original pixels. None (SHITU_LIMITS__DECODE_MAX_SIDE_PX=none): parity mode, "
        "the full decode of PaddleClas"
    )
    inference_workers: int | None = Field(
        None, ge=1, description="inference threads, each with its own predictors; None: cores / cpu_threads"
    )
    max_concurrent_requests: int = Field(
        32, ge=1, description="recognitions and reads in flight before 429; all run at once (cross-request batching)"
    )
    max_concurrent_writes: int = Field(4, ge=1, description="gallery writes in flight before 429 (own slots: never "
                                       "starved by recognitions)")
    request_timeout_s: float = Field(30.0, gt=0, description="inference time before 504 (never after a commit)")
    rate_per_client: float | None = Field(
        None, gt=0, description="requests per second per client (API key, else address); None: no rate limit"
    )
    rate_burst: int = Field(20, ge=1, description="requests a client may send at once before its rate applies")
    header_timeout_s: float = Field(10.0, gt=0, description="a connection must send its request headers in this time")


class Scope(str, Enum):
    """What an API key may do: read (recognize, list), write (gallery changes), admin (metrics, details)."""

    read = "read"
    write = "write"
    admin = "admin"


class ApiKey(BaseModel):
    """A key is stored as the SHA-256 of its text (``shitu keys new`` prints both)."""

    name: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.read])


class AuthSettings(BaseModel):
    keys: list[ApiKey] = Field(default_factory=list, description="API keys (hashed); JSON in SHITU_AUTH__KEYS")
    keys_file: Path | None = Field(None, description="JSON list of keys, re-read when it changes: rotation "
                                   "without a restart")
    anonymous_scopes: list[Scope] | None = Field(
        None, description="what a request without a key may do; None: everything on loopback while no key is "
        "configured, else read only"
    )
    cors_origins: list[str] = Field(default_factory=list, description="browser origins allowed to call the API")
    docs: bool = Field(True, description="serve /docs and /openapi.json")
    metrics_scope: Scope | None = Field(None, description="scope /metrics needs; None: open")
    info_details_scope: Scope | None = Field(
        Scope.admin, description="scope /info's provenance, runtime and limits need (when keys exist)"
    )


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"

    @property
    def loopback_only(self) -> bool:
        return self.host in ("127.0.0.1", "::1", "localhost") or self.host.startswith("127.")


class Settings(BaseSettings):
    """All settings. Environment: ``SHITU_GALLERY__PATH=/data/gallery``, ``SHITU_RUNTIME__CPU_THREADS=4``…"""

    # "none" in a variable is None: SHITU_LIMITS__DECODE_MAX_SIDE_PX=none is the full decode (parity mode).
    model_config = SettingsConfigDict(env_prefix="SHITU_", env_nested_delimiter="__", extra="ignore",
                                      env_parse_none_str="none")

    runtime: RuntimeSettings = RuntimeSettings()
    batching: BatchingSettings = BatchingSettings()
    models: ModelSettings = ModelSettings()
    pipeline: PipelineSettings = PipelineSettings()
    gallery: GallerySettings = GallerySettings()
    limits: LimitsSettings = LimitsSettings()
    auth: AuthSettings = AuthSettings()
    server: ServerSettings = ServerSettings()

    @model_validator(mode="after")
    def _tensorrt_needs_gpu(self) -> Settings:
        if self.runtime.tensorrt and self.runtime.device is not Device.gpu:
            raise ValueError("runtime.tensorrt needs runtime.device=gpu")
        return self


def inference_workers(settings: Settings) -> int:
    """The configured inference threads, else as many as the cores hold at ``cpu_threads`` each."""
    if settings.limits.inference_workers is not None:
        return settings.limits.inference_workers
    if settings.runtime.device is Device.gpu:
        return 1
    return max(1, cpu_count() // settings.runtime.cpu_threads)


def lone_cpu_threads(runtime: RuntimeSettings) -> int:
    """Math threads of a batch that runs alone (CPU only; equal to ``cpu_threads``: no separate predictors)."""
    if runtime.device is Device.gpu or runtime.lone_cpu_threads is None:
        return runtime.cpu_threads
    return max(runtime.cpu_threads, runtime.lone_cpu_threads)


def get_settings() -> Settings:
    return Settings()
