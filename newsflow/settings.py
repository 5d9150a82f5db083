"""All of newsflow's settings, one pydantic-settings class per section.

Every field reads an environment variable ``NEWSFLOW_<SECTION>_<FIELD>`` (or a ``.env``
file in the working directory). Library code receives these objects; it never reads
``os.environ`` itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from newsflow import __version__
from newsflow.durations import MAX_DURATION, parse_duration
from newsflow.errors import ConfigError

__all__ = [
    "DEFAULT_INDEX_PREFIX",
    "ElasticsearchSettings",
    "ExtractSettings",
    "FeedSettings",
    "FetchSettings",
    "IndexerSettings",
    "KafkaSettings",
    "KibanaSettings",
    "Settings",
    "index_name",
    "load_settings",
]


def _section(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix, env_file=".env", extra="ignore", validate_default=True
    )


DEFAULT_INDEX_PREFIX = "news"
_PREFIX_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
_INDEX_ROLES = {
    "index": "articles",
    "history_index": "articles-history",
    "feeds_index": "feeds",
    "revisits_index": "revisits",
}
"""Setting of each Elasticsearch name -> its suffix after ``<prefix>-``."""
_NAMES_BEFORE_PREFIXES = {"feeds_index": "newsflow-feeds", "revisits_index": "newsflow-revisits"}
"""Names of the default prefix that predate the scheme and are kept as they were."""


def index_name(prefix: str, role: str) -> str:
    """The Elasticsearch name of ``role`` (a key of ``_INDEX_ROLES``) under ``prefix``.

    ``news`` (the default) gives ``news-articles``, ``news-articles-history`` and
    ``newsflow-feeds``; ``acme`` gives ``acme-articles``, ``acme-articles-history`` and
    ``acme-feeds``. A new per-deployment index adds its role to ``_INDEX_ROLES``.
    """
    if prefix == DEFAULT_INDEX_PREFIX and role in _NAMES_BEFORE_PREFIXES:
        return _NAMES_BEFORE_PREFIXES[role]
    return f"{prefix}-{_INDEX_ROLES[role]}"


_KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettings(BaseSettings):
    """Where and how articles are published (``NEWSFLOW_KAFKA_*``)."""

    model_config = _section("NEWSFLOW_KAFKA_")

    bootstrap_servers: str | None = None
    """Comma-separated ``host:port`` list. Unset: the embedded SQLite buffer is used."""
    topic: str = "news.articles"
    """Topic the articles are published to; keyed by ``doc_id``."""
    dlq_topic: str = "news.articles.dlq"
    """Where the indexer sends records it cannot decode or the store rejects."""
    partitions: int = Field(default=6, ge=1)
    """Partitions when newsflow creates the topics."""
    replication_factor: int | None = Field(default=None, ge=1)
    """Replication factor when newsflow creates the topics. Unset: ``min(3, brokers)``,
    from the brokers the cluster reports (1 on a single broker, 3 on a cluster)."""
    min_insync_replicas: int | None = Field(default=None, ge=1)
    """``min.insync.replicas`` of the topics newsflow creates: with ``acks=all`` a write
    is acknowledged only once this many copies have it. Unset: ``min(2, replication
    factor)``, so one broker may fail without losing or refusing an acknowledged write."""
    consumer_group: str = "newsflow-indexer"
    """Consumer group of the indexer; run several indexers to share partitions."""
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    """Longest an indexer may take between two polls before the group gives its partitions
    to another member; a batch held up longer (e.g. by bulk retries) is not committed and
    is delivered again."""
    session_timeout_ms: int = Field(default=45_000, ge=6_000, le=1_800_000)
    """How long the group waits for a silent indexer (a crashed process, a lost host)
    before it gives that member's partitions to the others. Shorter: faster take-over
    after a crash, more false alarms on a loaded host. Within the brokers'
    ``group.min.session.timeout.ms`` .. ``group.max.session.timeout.ms`` (6 s .. 30 min
    by default)."""
    client_id: str = "newsflow"
    """Client id sent to the brokers (shows up in broker logs and quotas)."""
    compression_type: str = "zstd"
    """Producer compression: zstd, gzip, lz4, snappy or none."""
    linger_ms: int = Field(default=20, ge=0)
    """How long the producer waits to fill a batch."""
    batch_size: int = Field(default=1_048_576, ge=16_384)
    """Producer batch size in bytes (articles are 10-100 KB of JSON)."""
    max_request_size: int = Field(default=8_388_608, ge=1_048_576)
    """Largest request the producer sends; must not exceed the broker's message.max.bytes."""
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    """Producer and admin request timeout."""
    security_protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    sasl_mechanism: str | None = None
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 when a SASL protocol is used."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password."""
    ssl_cafile: Path | None = None
    """PEM file of the certificate authority that signed the brokers' certificates (SSL and
    SASL_SSL); unset: the system's trusted authorities."""
    ssl_certfile: Path | None = None
    """PEM file of this client's certificate (and any intermediates), for brokers that
    require client authentication (mutual TLS on an SSL listener)."""
    ssl_keyfile: Path | None = None
    """PEM file of this client's private key (with ``ssl_certfile``)."""
    ssl_password: SecretStr | None = None
    """Password of an encrypted ``ssl_keyfile``."""
    ssl_check_hostname: bool = True
    """Check that a broker's certificate names the host it was reached at."""

    @field_validator("security_protocol", "sasl_mechanism")
    @classmethod
    def _known_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        known = _KAFKA_PROTOCOLS if info.field_name == "security_protocol" else _SASL_MECHANISMS
        if value.upper() not in known:
            raise ValueError(f"expected one of {', '.join(known)}")
        return value.upper()

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_"):
            missing = [
                f"NEWSFLOW_KAFKA_{name.upper()}"
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"{self.security_protocol} needs {', '.join(missing)}")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("NEWSFLOW_KAFKA_SSL_KEYFILE needs NEWSFLOW_KAFKA_SSL_CERTFILE")
        return self


class ElasticsearchSettings(BaseSettings):
    """Where articles are indexed and feed state is kept (``NEWSFLOW_ELASTICSEARCH_*``)."""

    model_config = _section("NEWSFLOW_ELASTICSEARCH_")

    url: str | None = None
    """Node URL, e.g. ``http://127.0.0.1:9200``, or a comma-separated list of every node
    of a cluster (as ``deploy/local/stack status`` prints it); the client spreads requests
    over them and skips a node that failed. Unset: the embedded SQLite store is used."""
    sniff: bool = False
    """Ask the cluster for its nodes on start and after a node failed, and use those
    (their publish addresses must be reachable from here)."""
    prefix: str = Field(default=DEFAULT_INDEX_PREFIX, pattern=_PREFIX_PATTERN)
    """Every index, alias and template name of this deployment derives from it (see
    :func:`index_name`), so two deployments with different prefixes share a cluster
    without seeing each other's data. Lower-case letters, digits, ``-`` and ``_``; the
    word ``articles`` may not be one of its ``-``-separated parts (it would make the
    template patterns of two prefixes overlap), and ``newsflow`` is taken."""
    index: str = ""
    """Alias that searches and writes go through (one concrete index sits behind it).
    Empty: ``<prefix>-articles``."""
    history_index: str = ""
    """Every revision of every article, keyed ``<doc_id>:<revision>``. Empty:
    ``<prefix>-articles-history``."""
    feeds_index: str = ""
    """Per-feed state: conditional-GET validators, health, backoff. Empty:
    ``<prefix>-feeds`` (``newsflow-feeds`` for the default prefix, its name before
    prefixes)."""
    revisits_index: str = ""
    """Pages polls fetch again: the retry set of failed pages and the recheck schedule.
    Empty: ``<prefix>-revisits`` (``newsflow-revisits`` for the default prefix)."""
    shards: int = Field(default=1, ge=1)
    """Primary shards of newly created indices."""
    replicas: int | None = Field(default=None, ge=0)
    """Replicas of newly created indices. Unset: 1 on a cluster of two or more nodes,
    0 on a single node (from the nodes the cluster reports)."""
    wait_for_active_shards: int | None = Field(default=None, ge=1)
    """Copies of a shard that must be active before a write goes ahead
    (``index.write.wait_for_active_shards``); a write is replicated to every in-sync copy
    either way. Unset: 2 with two or more replicas, else 1 -- with a single replica,
    waiting for both copies would stall writes whenever one node is away."""
    username: str | None = None
    """Basic-auth user."""
    password: SecretStr | None = None
    """Basic-auth password."""
    api_key: SecretStr | None = None
    """API key (instead of user and password)."""
    verify_certs: bool = True
    """Verify the server's TLS certificate."""
    ca_certs: Path | None = None
    """CA bundle for a private certificate authority."""
    ssl_assert_fingerprint: str | None = None
    """SHA-256 fingerprint (hex, colons allowed) of the node's certificate: the connection
    is trusted when the certificate matches it, without a CA file (the fingerprint that
    Elasticsearch prints at its first start)."""
    request_timeout: float = Field(default=30.0, gt=0)
    """Seconds per request."""
    bulk_max_bytes: int = Field(default=20 * 1024 * 1024, ge=64 * 1024)
    """Largest bulk request body the indexer sends, in bytes; keep it under the cluster's
    ``http.max_content_length`` (100 MB by default). An article is sent twice (current and
    history), so one whose two copies exceed this bound is dead-lettered unsent. The
    default fits two copies of the largest Kafka record (``NEWSFLOW_KAFKA_MAX_REQUEST_SIZE``)."""

    @field_validator("prefix")
    @classmethod
    def _prefix_cannot_overlap(cls, prefix: str) -> str:
        if "articles" in prefix.split("-"):
            raise ValueError("'articles' may not be a '-'-separated part of the prefix")
        if prefix == "newsflow":
            raise ValueError("'newsflow-feeds' is the feeds index of the default prefix 'news'")
        return prefix

    @model_validator(mode="after")
    def _derive_names(self) -> ElasticsearchSettings:
        for role in _INDEX_ROLES:
            if not getattr(self, role):
                setattr(self, role, index_name(self.prefix, role))
        return self


class FetchSettings(BaseSettings):
    """How feed and article pages are fetched (``NEWSFLOW_FETCH_*``)."""

    model_config = _section("NEWSFLOW_FETCH_")

    user_agent: str = (
        f"newsflow/{__version__} (+https://github.com/newsflow/newsflow; news ingestion bot)"
    )
    """User-Agent header sent with every request (also what robots.txt rules match)."""
    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to establish a connection."""
    read_timeout: float = Field(default=15.0, gt=0)
    """Seconds without receiving a byte before a read fails."""
    deadline: float = Field(default=30.0, gt=0)
    """Overall seconds for one request, redirects and body included."""
    max_redirects: int = Field(default=5, ge=0)
    """Redirect hops followed per request."""
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    """Largest body accepted, counted after decompression."""
    concurrency: int = Field(default=16, ge=1)
    """Requests in flight at once across all hosts."""
    per_host_concurrency: int = Field(default=2, ge=1)
    """Requests in flight at once to one host."""
    per_host_delay: float = Field(default=0.25, ge=0)
    """Seconds between the starts of two requests to one host (politeness)."""
    respect_robots: bool = True
    """Obey robots.txt (a feed can opt out with ``respect_robots = false``)."""
    allow_private_networks: bool = False
    """Lift the SSRF guard: allow loopback, private and link-local addresses."""


class ExtractSettings(BaseSettings):
    """Text and metadata extraction (``NEWSFLOW_EXTRACT_*``)."""

    model_config = _section("NEWSFLOW_EXTRACT_")

    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    """Extraction processes (CPU-bound work; default: one per core)."""
    page_timeout: float = Field(default=20.0, gt=0)
    """Seconds one page may take before its worker is replaced and the page skipped."""
    page_memory_mb: int = Field(default=1024, ge=128)
    """Address-space cap of each extraction worker, in MiB."""
    min_text_chars: int = Field(default=250, ge=0)
    """Pages with less extracted text are skipped as ``too_short``."""


class FeedSettings(BaseSettings):
    """Feed polling policy (``NEWSFLOW_FEED_*``)."""

    model_config = _section("NEWSFLOW_FEED_")

    min_interval: float = Field(default=300.0, ge=0, le=MAX_DURATION)
    """Default seconds between two polls of one feed (a feed may set its own)."""
    backoff_base: float = Field(default=60.0, gt=0, le=MAX_DURATION)
    """First wait after a failure; doubles with every consecutive failure."""
    backoff_max: float = Field(default=6 * 3600.0, gt=0, le=MAX_DURATION)
    """Longest wait after failures; a failing feed is retried at least this often."""
    max_entries: int = Field(default=200, ge=1)
    """Entries considered per feed and poll (newest first)."""
    concurrency: int = Field(default=32, ge=1)
    """Feeds polled at the same time by one run; their requests share the fetch limits.

    Waiting out one site's politeness delay costs a thread, not a core: enough feeds in
    flight keep the extraction pool busy while each site is fetched slowly.
    """
    parse_timeout: float = Field(default=30.0, gt=0)
    """Seconds the feed parser may spend on one feed body (in a worker of the extraction
    pool, under its memory limit); past it the poll fails and the feed backs off."""
    page_retry_base: float = Field(default=300.0, gt=0)
    """First wait before an article page that failed transiently (5xx, 429, timeout,
    extraction timeout or crash) is fetched again; doubles with every failed attempt."""
    page_retry_max: float = Field(default=6 * 3600.0, gt=0)
    """Longest wait between two attempts of a failed page (also caps its Retry-After)."""
    page_retry_give_up: float = Field(default=48 * 3600.0, ge=0)
    """Seconds after its first failure when a page is given up (kept, marked, counted)."""
    page_retries_per_poll: int = Field(default=20, ge=0)
    """Failed pages retried per feed and poll at most (0: none)."""
    recheck_after: Annotated[tuple[float, ...], NoDecode] = (3600.0, 21600.0, 86400.0, 259200.0)
    """When a new article's page is fetched again for corrections its feed does not
    announce, counted from first seen: durations, comma-separated (``1h,6h,24h,72h``);
    empty: never. A feed opts out with ``recheck = false``."""
    rechecks_per_poll: int = Field(default=20, ge=0)
    """Article pages re-checked per feed and poll at most (0: none)."""

    @field_validator("recheck_after", mode="before")
    @classmethod
    def _durations(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return tuple(sorted(parse_duration(part) for part in value))
        return value


class IndexerSettings(BaseSettings):
    """The Kafka -> store indexer (``NEWSFLOW_INDEXER_*``)."""

    model_config = _section("NEWSFLOW_INDEXER_")

    batch_size: int = Field(default=500, ge=1)
    """Records per bulk request."""
    poll_timeout: float = Field(default=1.0, gt=0)
    """Seconds one poll waits for records."""
    idle_timeout: float = Field(default=5.0, gt=0)
    """With ``--until-idle``: stop after this many seconds without records."""
    retry_backoff_max: float = Field(default=60.0, gt=0)
    """Longest wait between two retries of a failed bulk request (retries never stop)."""


class KibanaSettings(BaseSettings):
    """Where ``newsflow kibana import`` sends the saved objects (``NEWSFLOW_KIBANA_*``)."""

    model_config = _section("NEWSFLOW_KIBANA_")

    url: str | None = None
    """Kibana base URL, e.g. ``http://localhost:5601``."""
    space: str | None = None
    """Kibana space to import into (default space when unset)."""
    username: str | None = None
    """Basic-auth user."""
    password: SecretStr | None = None
    """Basic-auth password."""
    api_key: SecretStr | None = None
    """API key (instead of user and password)."""
    verify_certs: bool = True
    """Verify Kibana's TLS certificate."""


class Settings(BaseSettings):
    """The root: one field per section, plus where embedded data lives."""

    model_config = _section("NEWSFLOW_")

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("newsflow")))
    """Embedded buffer and store live here when Kafka / Elasticsearch are not configured."""
    feeds_file: Path = Path("feeds.toml")
    """Feeds file that ``newsflow feeds`` reads and edits (relative paths: the working
    directory); ``--feeds`` overrides it."""
    metrics_textfile: Path | None = None
    """``newsflow run`` writes the counts of each cycle here, atomically, in the Prometheus
    text format (for node_exporter's textfile collector). Unset: no file."""
    metrics_pushgateway: str | None = None
    """Pushgateway URL (``http://host:9091``) a ``poll_feeds`` flow run pushes its metrics
    to when it ends, under ``job="newsflow_poll_feeds"`` and the worker's host name as
    ``instance``. Unset: flow runs push nothing."""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    extract: ExtractSettings = Field(default_factory=ExtractSettings)
    feed: FeedSettings = Field(default_factory=FeedSettings)
    indexer: IndexerSettings = Field(default_factory=IndexerSettings)
    kibana: KibanaSettings = Field(default_factory=KibanaSettings)


def load_settings(**overrides: Any) -> Settings:
    """:class:`Settings` from the environment (and ``overrides``), or one ConfigError.

    The error is one line naming each offending variable, its value and what is wrong,
    e.g. ``NEWSFLOW_FETCH_DEADLINE='abc': input should be a valid number, ...``.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None  # the pydantic report is many lines
    except SettingsError as exc:  # e.g. NEWSFLOW_FETCH='not json' for a whole section
        raise ConfigError(f"{exc}; set the section's fields one by one instead") from None


def _describe(exc: ValidationError) -> str:
    # A section's error surfaces from its default factory, titled with the section class.
    section = _SECTIONS.get(exc.title, Settings)
    problems = []
    for error in exc.errors(include_url=False):
        names = [str(part) for part in error["loc"]]
        model: type[BaseSettings] = section
        if len(names) > 1 and model is Settings and names[0] in _SECTION_FIELDS:
            model = _SECTION_FIELDS[names.pop(0)]
        variable = (str(model.model_config.get("env_prefix", "")) + "_".join(names)).upper()
        field = model.model_fields.get(names[0]) if names else None
        secret = field is not None and "SecretStr" in str(field.annotation)
        value = "<secret>" if secret else repr(error.get("input"))
        message = error["msg"][:1].lower() + error["msg"][1:]
        if not names:
            # A check across fields: its input is the whole section, secrets included.
            problems.append(f"{variable}*: {message}")
            continue
        problems.append(f"{variable}={value}: {message}")
    return "; ".join(problems).replace("\n", " ")


_SECTIONS: dict[str, type[BaseSettings]] = {
    cls.__name__: cls
    for cls in (
        KafkaSettings,
        ElasticsearchSettings,
        FetchSettings,
        ExtractSettings,
        FeedSettings,
        IndexerSettings,
        KibanaSettings,
        Settings,
    )
}
_SECTION_FIELDS: dict[str, type[BaseSettings]] = {
    name: field.annotation
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings)
}
