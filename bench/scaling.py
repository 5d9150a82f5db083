"""Scale-out figures on a 3-broker / 3-node cluster (issue 12); a benchmark, not a test.

One run measures, on the same cluster and the same generated articles:

- publish throughput with ``acks=all`` to a topic of replication 3 (``min.insync.replicas``
  2) against replication 1 (one copy: what a single broker gives), in this process;
- indexer throughput of 1, 2 and 3 ``newsflow index --until-idle`` members in one consumer
  group over 6 partitions, each count on a fresh group and a fresh index;
- CPU seconds per article: this process for publishing, the members (children) for
  indexing, and the six JVMs (``/proc/<pid>/stat``) for the broker and node side;
- bytes per article in Kafka (log segments of the topic, all replicas) and in
  Elasticsearch (store size of the articles and history indices, all copies).

``python -m bench.scaling --articles 3000`` starts its own cluster (as the cluster tests
do, ports 24092-24097 / 24200-24202) unless ``--home`` names a running one; ``make
scaling`` runs it. Figures go to stdout and ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from connectors import open_buffer
from newsflow.publish import publish
from newsflow.settings import Settings
from tests.cluster.articles import article
from tests.cluster.cluster import Cluster

_TICKS = os.sysconf("SC_CLK_TCK")


def _jvm_cpu(cluster: Cluster) -> float:
    total = 0.0
    for pid in cluster.pids().values():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def _env(cluster: Cluster, run: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS=cluster.bootstrap,
        NEWSFLOW_KAFKA_TOPIC=f"s{run}.articles",
        NEWSFLOW_KAFKA_DLQ_TOPIC=f"s{run}.articles.dlq",
        NEWSFLOW_KAFKA_PARTITIONS="6",
        NEWSFLOW_ELASTICSEARCH_URL=cluster.es_urls,
        NEWSFLOW_ELASTICSEARCH_SHARDS="3",
        NEWSFLOW_INDEXER_IDLE_TIMEOUT="10",
    )
    env.update(extra)
    return env


def _settings(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _kafka_bytes(cluster: Cluster, topic: str) -> int:
    return sum(
        f.stat().st_size
        for f in (cluster.home / "data").glob(f"kafka*/**/{topic}-*/*.log")
        if f.is_file()
    )


def measure_publish(cluster: Cluster, articles: int, factor: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    env = _env(cluster, run, NEWSFLOW_KAFKA_REPLICATION_FACTOR=str(factor))
    settings = _settings(env)
    docs = [article(run, i) for i in range(articles)]
    buffer = open_buffer(settings)
    try:
        buffer.ensure_topics([settings.kafka.topic])
        publish(buffer, settings.kafka.topic, docs[:50])  # connect, fetch metadata
        jvm, cpu, wall = _jvm_cpu(cluster), time.process_time(), time.perf_counter()
        for start in range(50, articles, 100):
            publish(buffer, settings.kafka.topic, docs[start : start + 100])
        wall = time.perf_counter() - wall
        cpu, jvm = time.process_time() - cpu, _jvm_cpu(cluster) - jvm
    finally:
        buffer.close()
    sent = articles - 50
    time.sleep(2)  # segments flushed to the page cache are counted by size already
    return {
        "replication": factor,
        "articles": sent,
        "wall_s": round(wall, 2),
        "articles_per_s": round(sent / wall, 1),
        "client_cpu_ms_per_article": round(1000 * cpu / sent, 3),
        "broker_cpu_ms_per_article": round(1000 * jvm / sent, 3),
        "kafka_bytes_per_article": round(_kafka_bytes(cluster, settings.kafka.topic) / articles),
        "topic": settings.kafka.topic,
    }


def _es_bytes(cluster: Cluster, prefix: str) -> tuple[int, int]:
    stats = cluster.es_get(f"/{prefix}-articles*/_stats/store,docs")
    total = stats["_all"]["total"]["store"]["size_in_bytes"]
    primaries = stats["_all"]["primaries"]["store"]["size_in_bytes"]
    return int(total), int(primaries)


def measure_indexers(cluster: Cluster, topic: str, articles: int, members: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    env = _env(
        cluster,
        run,
        NEWSFLOW_KAFKA_TOPIC=topic,
        NEWSFLOW_KAFKA_CONSUMER_GROUP=f"s{run}-indexer",
        NEWSFLOW_ELASTICSEARCH_PREFIX=f"s{run}",
    )
    newsflow = str(Path(sys.executable).parent / "newsflow")
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    jvm, wall = _jvm_cpu(cluster), time.perf_counter()
    procs = [
        subprocess.Popen(  # noqa: S603 - our own CLI
            [newsflow, "index", "--until-idle"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(members)
    ]
    outputs = [proc.communicate(timeout=1800)[0] for proc in procs]
    wall = time.perf_counter() - wall
    jvm = _jvm_cpu(cluster) - jvm
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before_children.ru_utime) + (after.ru_stime - before_children.ru_stime)
    per_member = []
    for out in outputs:
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        per_member.append(int(values.get("indexed", 0)))
    total, primaries = _es_bytes(cluster, f"s{run}")
    return {
        "members": members,
        "articles": articles,
        "indexed_per_member": per_member,
        "wall_s": round(wall, 2),
        "articles_per_s": round(articles / wall, 1),
        "member_cpu_ms_per_article": round(1000 * cpu / articles, 3),
        "cluster_cpu_ms_per_article": round(1000 * jvm / articles, 3),
        "es_bytes_per_article_all_copies": round(total / articles),
        "es_bytes_per_article_primaries": round(primaries / articles),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--home", type=Path, help="home of a running 3+3 stack to use")
    parser.add_argument("--out", type=Path, default=Path("bench/out/scaling.json"))
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="newsflow-scaling-")) / "home"
    cluster = Cluster(home)
    cluster.up()
    try:
        results: dict[str, Any] = {"cpus": os.cpu_count(), "articles": args.articles}
        results["publish"] = [measure_publish(cluster, args.articles, f) for f in (1, 3)]
        topic = results["publish"][1]["topic"]  # the replicated one, 6 partitions
        results["index"] = [measure_indexers(cluster, topic, args.articles, m) for m in (1, 2, 3)]
    finally:
        if args.home is None:
            cluster.down()
    text = json.dumps(results, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
