"""The one settings module: every deployment-specific value comes from the environment (12-factor).

Defaults give the embedded one-machine stack of `make run`: SQLite, Redis and a Milvus Lite server on
localhost, files under ``var/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from retrieval_core.rerank.scorer import RERANK_METHODS
from retrieval_core.rerank.verification import GeometryMethod
from retrieval_core.search.served import SERVED
from webapp.env import env_bool, env_choice, env_float, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")

SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# HTTPS behind a TLS-terminating proxy (`manage.py check --deploy` passes with HTTPS=1, DEBUG=0 and a long
# SECRET_KEY): secure cookies, HSTS and the redirect to https follow HTTPS unless set one by one.
HTTPS = env_bool("HTTPS", False)
if env_bool("SECURE_PROXY_SSL_HEADER", HTTPS):  # the proxy says which scheme the client used
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$", r"^readyz$", r"^metrics$"]  # probes and scrapers speak plain HTTP
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # the JSON API's Swagger UI from its bundled static files (webapp.api), not a CDN
    "webapp.catalog",
    "webapp.embeddings",
    "webapp.search",
    "webapp.reranking",
    "webapp.curation",
    "webapp.evaluation",
    "webapp.training",
    "webapp.accounts",
    "webapp.operations",
    "workers",  # loads the Celery app (workers/celery.py) that webapp.dispatch sends tasks through
]

MIDDLEWARE = [
    # First: every request, refusals included, is timed (/metrics) and has an id (logs, X-Request-ID).
    "webapp.metrics.RequestMetricsMiddleware",
    "webapp.request_id.RequestIdMiddleware",
    "webapp.unavailable.RetryAfterMiddleware",  # every 503 says when to retry
    "django.middleware.security.SecurityMiddleware",
    # Before sessions, users and the body: a refused search costs a path lookup and a counter.
    "webapp.throttling.SearchThrottleMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'landmarks.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write concurrently: WAL plus immediate transactions avoid
    # "database is locked" under that load.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": env_str("SQLITE_TEST_NAME", str(VAR_DIR / "test.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "static")
MEDIA_URL = "media/"
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")
SERVE_MEDIA = env_bool("SERVE_MEDIA", True)
# Shared storage. Every process of a deployment reads
# what the others wrote, so MEDIA_ROOT, FEATURES_ROOT and VAR_DIR (training runs) must be folders shared by
# all of them (a docker volume, a ReadWriteMany PersistentVolumeClaim; tests/deploy checks compose and k8s).
# STORAGE_BACKEND=s3 moves the bulk, each image's local features and CNN patches, to an
# S3-compatible bucket (MinIO, AWS S3, Ceph RGW) under STORAGE_PREFIX/sift and STORAGE_PREFIX/patches.
STORAGE_BACKEND = env_str("STORAGE_BACKEND", "local")
if STORAGE_BACKEND not in ("local", "s3"):
    raise ImproperlyConfigured(f"STORAGE_BACKEND must be local or s3, not {STORAGE_BACKEND!r}")
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME", "")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL", "")  # empty: AWS itself; http://minio:9000 in compose
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "us-east-1")
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID", "")  # empty: boto3's own chain (instance role, ...)
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY", "")
STORAGE_PREFIX = env_str("STORAGE_PREFIX", "landmarks")
STORAGE_PARALLEL_GETS = env_int("STORAGE_PARALLEL_GETS", 16)  # concurrent GETs loading re-rank candidates
STORAGE_CREATE_BUCKET = env_bool("STORAGE_CREATE_BUCKET", False)  # create it on first use (MinIO, tests)
# With s3: a local folder of this machine that keeps the features a process has read, so repeated candidates
# load at local-disk speed (retrieval_core/storage/cached.py). Meant for the web servers; empty = none.
STORAGE_CACHE_DIR = env_str("STORAGE_CACHE_DIR", "")
if STORAGE_BACKEND == "s3" and not AWS_STORAGE_BUCKET_NAME:
    raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs AWS_STORAGE_BUCKET_NAME (and off AWS an endpoint)")
# Media (photos, thumbnails, query photos, evaluation reports): MEDIA_ROOT (local), or MEDIA_STORAGE=s3 for
# the same bucket under STORAGE_PREFIX/media (webapp/media.py). A setting of its own, so a deployment that
# already runs STORAGE_BACKEND=s3 keeps its photos where they are until it has copied them to the bucket;
# media on s3 needs STORAGE_BACKEND=s3, so there is one bucket configuration, checked once.
MEDIA_STORAGE = env_str("MEDIA_STORAGE", "local")
if MEDIA_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(f"MEDIA_STORAGE must be local or s3, not {MEDIA_STORAGE!r}")
if MEDIA_STORAGE == "s3" and STORAGE_BACKEND != "s3":
    raise ImproperlyConfigured(
        "MEDIA_STORAGE=s3 needs STORAGE_BACKEND=s3: photos go to the feature store's bucket "
        "(AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL, credentials)"
    )
STORAGES = {
    "default": {
        "BACKEND": "webapp.media.MediaS3Storage"
        if MEDIA_STORAGE == "s3"
        else "django.core.files.storage.FileSystemStorage"
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads: a photo bigger than this is refused with 413 before it is decoded.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 200)
# Decoding more pixels than this is treated as a decompression bomb.
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", SERVED.search.decode.max_pixels)
# Query and index photos are decoded alike: a JPEG larger than needed is DCT-decoded down to no less than
# this long side (2x the network's input size, so no detail the network sees is lost), then each feature
# resizes the same pixels.
DECODE_DRAFT_LONG_SIDE = env_int("DECODE_DRAFT_LONG_SIDE", SERVED.search.decode.draft_long_side or 0)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES

# Retrieval.
MILVUS_URI = env_str("MILVUS_URI", "http://127.0.0.1:19530")
MILVUS_TOKEN = env_str("MILVUS_TOKEN", "")
MILVUS_COLLECTION_PREFIX = env_str("MILVUS_COLLECTION_PREFIX", "landmarks")
# ANN index of a new collection (retrieval_core.index.milvus_store.AnnIndexParams; the defaults keep recall
# high at the collection sizes bench/ann_scale.py measures): HNSW | HNSW_SQ | IVF_FLAT | IVF_SQ8 | IVF_PQ |
# FLAT. An existing collection keeps its index until rebuilt; ef / nprobe apply to searches at once.
MILVUS_INDEX_TYPE = env_str("MILVUS_INDEX_TYPE", "HNSW")
MILVUS_INDEX_M = env_int("MILVUS_INDEX_M", 16)
MILVUS_INDEX_EF_CONSTRUCTION = env_int("MILVUS_INDEX_EF_CONSTRUCTION", 200)
MILVUS_INDEX_EF = env_int("MILVUS_INDEX_EF", 256)
MILVUS_INDEX_NLIST = env_int("MILVUS_INDEX_NLIST", 1024)
MILVUS_INDEX_NPROBE = env_int("MILVUS_INDEX_NPROBE", 32)
MILVUS_INDEX_PQ_M = env_int("MILVUS_INDEX_PQ_M", 16)
if MILVUS_INDEX_TYPE not in ("HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "FLAT"):
    raise ImproperlyConfigured(
        "MILVUS_INDEX_TYPE must be HNSW, HNSW_SQ, IVF_FLAT, IVF_SQ8, IVF_PQ or FLAT, "
        f"not {MILVUS_INDEX_TYPE!r}"
    )
# Search, embedding and re-ranking. Every default below is the served preset
# (retrieval_core.search.served.SERVED); an environment variable overrides one value of it.
EMBEDDING_BACKBONE = env_str("EMBEDDING_BACKBONE", SERVED.embedding.backbone)
EMBEDDING_WEIGHTS = env_str("EMBEDDING_WEIGHTS", SERVED.embedding.weights)
EMBEDDING_IMAGE_SIZE = env_int("EMBEDDING_IMAGE_SIZE", SERVED.embedding.image_size)
EMBEDDING_GEM_P = env_float("EMBEDDING_GEM_P", SERVED.embedding.gem_p)
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 16)
INDEX_TASK_BATCH = env_int("INDEX_TASK_BATCH", 32)
SEARCH_TOP_K = env_int("SEARCH_TOP_K", SERVED.search.k)
# Landmark recognition (retrieval_core.search.recognition): the top N re-ranked results vote; below the
# confidence threshold the answer is "not in the collection". SEARCH_BATCH_MAX: images per batch request.
RECOGNITION_TOP_N = env_int("RECOGNITION_TOP_N", SERVED.search.recognition.top_n)
RECOGNITION_THRESHOLD = env_float("RECOGNITION_THRESHOLD", SERVED.search.recognition.threshold)
SEARCH_BATCH_MAX = env_int("SEARCH_BATCH_MAX", 8)
TORCH_THREADS = env_int("TORCH_THREADS", 0)

# Re-ranking with local features (see webapp/reranking). RERANK_METHOD: sift | vlad | patches | none.
FEATURES_ROOT = env_path("FEATURES_ROOT", VAR_DIR / "features")
RERANK_METHOD = env_choice("RERANK_METHOD", SERVED.rerank_method, RERANK_METHODS)
# How many global candidates are re-ranked, and the global score's weight in the fused score until
# `manage.py tune_fusion` stores one chosen on validation queries.
RERANK_TOP_K = env_int("RERANK_TOP_K", SERVED.search.fusion.top_k)
FUSION_WEIGHT_GLOBAL = env_float("FUSION_WEIGHT_GLOBAL", SERVED.search.fusion.weight_global)
# SIFT of index photos and of queries: queries keep fewer keypoints, which makes matching cheaper (its cost
# grows with both counts), while stored photos keep enough to be matched from any side.
SIFT_MAX_KEYPOINTS = env_int("SIFT_MAX_KEYPOINTS", SERVED.index_sift.max_keypoints)
SIFT_QUERY_MAX_KEYPOINTS = env_int("SIFT_QUERY_MAX_KEYPOINTS", SERVED.query_sift.max_keypoints)
SIFT_LONG_SIDE = env_int("SIFT_LONG_SIDE", SERVED.index_sift.long_side)
SIFT_UPRIGHT = env_bool("SIFT_UPRIGHT", SERVED.index_sift.upright)  # orientation 0: for upright photos
# How index images' SIFT is stored: full or <8|4|2>bit-<float32|uint16>[-k<K>]
# (retrieval_core/features/compact.py). The default keeps the strongest keypoints with coarsely quantised
# descriptors and 16-bit geometry: a fraction of the full size, with the same re-ranking quality.
# A new format starts a new feature folder: run build_local_features after changing it.
LOCAL_FEATURES_FORMAT = env_str("LOCAL_FEATURES_FORMAT", SERVED.local_format)
# Threads a cpu worker extracts one batch's SIFT with (make run gives each of its two workers one core:
# Procfile, CPU_WORKER_THREADS / GPU_WORKER_THREADS).
LOCAL_FEATURE_THREADS = env_int("LOCAL_FEATURE_THREADS", 1)
# Verification: homography | fundamental (fundamental suits close 3-D scenes, but unrelated pairs reach
# more inliers by chance, hence the higher floor); inliers below RERANK_MIN_INLIERS carry no evidence.
RERANK_GEOMETRY = env_choice("RERANK_GEOMETRY", SERVED.verification.geometry, get_args(GeometryMethod))
RERANK_MIN_INLIERS = env_int("RERANK_MIN_INLIERS", SERVED.search.fusion.min_inliers)
# Recognised landmark first: when the re-ranked results name a landmark with at least this confidence
# (the answer's confidence, inlier-weighted votes), that landmark's photos among them rank first (0 = off):
# once geometry names the place, its other photos belong above look-alikes of other places. It uses the
# collection's curated labels, so it does nothing on an unlabelled collection.
RERANK_LANDMARK_FIRST = env_float("RERANK_LANDMARK_FIRST", SERVED.search.fusion.landmark_first)
# ... and when the verified votes name none, a landmark carried by at least this share of the top results
# (0 = off), high enough that a plain majority of look-alikes rarely moves the wrong place first ...
RERANK_LANDMARK_FIRST_MAJORITY = env_float(
    "RERANK_LANDMARK_FIRST_MAJORITY", SERVED.search.fusion.landmark_first_majority
)
# ... and only if that share is at least this many times the landmark's share of the indexed photos, so that a
# large landmark does not move first by its size alone (0 = no such check).
RERANK_LANDMARK_FIRST_LIFT = env_float("RERANK_LANDMARK_FIRST_LIFT", SERVED.search.fusion.landmark_first_lift)
# Verified query expansion: the query averaged with up to N SIFT-verified candidates (at least ..._INLIERS
# inliers) and fused again with the cosines to that vector (0 = off). Only geometrically verified photos
# join the query, so it finds the landmark's other views without drifting to look-alikes.
RERANK_VERIFIED_EXPANSION = env_int("RERANK_VERIFIED_EXPANSION", SERVED.search.verified_expansion)
RERANK_VERIFIED_EXPANSION_INLIERS = env_int(
    "RERANK_VERIFIED_EXPANSION_INLIERS", SERVED.search.verified_expansion_inliers
)
# Candidates' local features kept in memory per server process (LRU; 0 = read every file each search).
RERANK_FEATURE_CACHE_MB = env_int("RERANK_FEATURE_CACHE_MB", 256)
VLAD_CLUSTERS = env_int("VLAD_CLUSTERS", SERVED.vlad_clusters)
# CNN patches kept per image for the patch re-rank (0: none are stored).
PATCHES_TOP_N = env_int("PATCHES_TOP_N", SERVED.search.patch_top_n)
# Dataset analysis is coalesced (webapp/curation/analysis.py): requests within this many seconds, and all
# those made while the images are still being indexed, become one analysis run.
ANALYSIS_DEBOUNCE_SECONDS = env_float("ANALYSIS_DEBOUNCE_SECONDS", 2.0)
QUERY_RETENTION_HOURS = env_int("QUERY_RETENTION_HOURS", 24)  # query photos kept to draw their matches
QUERY_PURGE_INTERVAL_MINUTES = env_int("QUERY_PURGE_INTERVAL_MINUTES", 60)  # how often expired ones go

# Self-healing (webapp/operations): every RECONCILE_INTERVAL_SECONDS, work older than RECONCILE_STALE_SECONDS
# that never finished (pending images, missing local features, analysis, vectors missing from Milvus) is
# sent again and orphan vectors are deleted. One run at a time (a Redis lock), whatever the worker count.
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 300)
RECONCILE_STALE_SECONDS = env_int("RECONCILE_STALE_SECONDS", 600)

# Search is public: per-client rate limit (requests per SEARCH_RATE_WINDOW_SECONDS, 0 = off; counted in
# Redis, so shared by every web process) and admission control (searches running at once per process; one
# more waits at most SEARCH_ADMISSION_WAIT_MS, then gets 503 with Retry-After instead of queueing).
SEARCH_RATE_LIMIT = env_int("SEARCH_RATE_LIMIT", 120)
SEARCH_RATE_WINDOW_SECONDS = env_int("SEARCH_RATE_WINDOW_SECONDS", 60)
# Searches are CPU bound: by default one at a time per two cores (0 or less: no admission control).
SEARCH_MAX_IN_FLIGHT = env_int("SEARCH_MAX_IN_FLIGHT", max(1, (os.cpu_count() or 2) // 2))
# 0: refuse at once. A slot rarely frees within a few milliseconds of a search, and waiting holds a web
# thread that a burst of refusals needs (every refusal would take the whole wait longer).
SEARCH_ADMISSION_WAIT_MS = env_int("SEARCH_ADMISSION_WAIT_MS", 0)
# Searches of one client at once per process (0: no limit); one more gets 429 with Retry-After, so one
# address holding many connections cannot take every thread (the nginx front applies it before Python).
SEARCH_MAX_PER_CLIENT = env_int("SEARCH_MAX_PER_CLIENT", 2)
# The client of a request, for rate limiting: REMOTE_ADDR, or behind a proxy the META key of the header it
# sets (e.g. HTTP_X_REAL_IP; the proxy must overwrite it, never pass on the client's).
CLIENT_IP_HEADER = env_str("CLIENT_IP_HEADER", "REMOTE_ADDR")

# Celery, configured from here with the CELERY_ namespace (see workers/celery.py).
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6390/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_ROUTES = {
    "workers.tasks.gpu.*": {"queue": "gpu"},
    "workers.tasks.mining.prepare_mining": {"queue": "gpu"},  # may embed a collection folder
    "workers.tasks.mining.*": {"queue": "cpu"},
    "workers.tasks.cpu.*": {"queue": "cpu"},
    "workers.tasks.analysis.*": {"queue": "cpu"},
    "workers.tasks.operations.*": {"queue": "cpu"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXTENDED = True
# Keep the failures of fire-and-forget tasks (webapp/dispatch.py) too: the Jobs page lists them for retry.
CELERY_TASK_STORE_ERRORS_EVEN_IF_IGNORED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Seconds before Redis redelivers a task whose worker died without acknowledging it. Redis has one timeout
# for every queue, so it fits the longest task that must not run twice at once: an indexing, local-feature
# or analysis batch (seconds to a minute). The long gpu tasks are safe to redeliver: training resumes from
# last.pt, re-indexing and evaluation start again idempotently. Lost batches are also re-sent by the
# reconciler (below) once they are RECONCILE_STALE_SECONDS old, whatever this timeout.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600)}
CELERY_TASK_ALWAYS_EAGER = False
# Periodic upkeep, sent by the `celery beat` process (Procfile, docker-compose.yml) so no request does it.
# Task names are webapp.task_names constants, spelled out so the settings import no app.
CELERY_BEAT_SCHEDULE = {
    "purge-expired-queries": {
        "task": "workers.tasks.cpu.purge_expired_queries",
        "schedule": QUERY_PURGE_INTERVAL_MINUTES * 60.0,
        "options": {"expires": QUERY_PURGE_INTERVAL_MINUTES * 60.0},  # a missed purge is not worth queueing
    },
    "reconcile": {
        "task": "workers.tasks.operations.reconcile",
        "schedule": float(RECONCILE_INTERVAL_SECONDS),
        "options": {"expires": float(RECONCILE_INTERVAL_SECONDS)},
    },
}

# Logs go to stderr, one line per record, each with the id of the request (or of the request that queued
# the task) it belongs to (webapp/request_id.py). LOG_FORMAT=json: one JSON object a line, for a log
# collector (Loki, Elasticsearch, CloudWatch); plain: for a person at a terminal.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "webapp.request_id.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Metrics (webapp/metrics.py): /metrics on the web server; each Celery worker serves its own on this port
# (0 = none; two workers on one machine need two ports: Procfile). METRICS_TOKEN: when set, a scrape must
# send "Authorization: Bearer <token>" (Prometheus: authorization.credentials).
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0)
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# Read by prometheus_client itself: set (an empty folder of this machine's) in a process that runs several
# processes, so their metrics add up (gunicorn sets it, deploy/gunicorn.conf.py; a prefork Celery worker).
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "operations:collection"
LOGOUT_REDIRECT_URL = "search:search"
