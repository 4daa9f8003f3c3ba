"""PySpark 3.5 peer of bench/peer.ts: the demo pipeline and the windowed aggregation on the same Kafka topic, local[2].

    python3 bench/peers/spark_pipelines.py --resolve-only      start the JVM (resolving the Kafka and Avro connectors
                                                               through ivy) and stop: the warm-up, and the check
    python3 bench/peers/spark_pipelines.py --case demo|windowed --bootstrap HOST:PORT --in TOPIC --out TOPIC
        --registry-url URL [--writer-subject SUBJECT] [--batch 100000] [--partitions 4] [--checkpoint DIR] [--json]

Input: Confluent-framed Avro (magic 0, 4-byte schema id, Avro binary); the reader schema is the latest of
`<in>-value` in the registry. The header is cut off with substring(value, 6, length(value)-5), then from_avro
(FAILFAST).

demo: filter, event_hour, event_date, is_mobile, event_category (as src/demo/pipeline.ts); value = the 5-byte header
of the writer schema (the latest of --writer-subject: the schema Sluice registered for its own output, so both
engines write the same schema id) + to_avro(struct(...), writer schema); key = the input key; append mode.
windowed: withWatermark('timestamp', '1 minute'), groupBy(window(timestamp, '1 minute'), event_type),
count(*) AS events, avg(length(page_url)) AS avg_url_length; value = to_json(struct(window.start, window.end,
event_type, events, avg_url_length)), no key; update mode.

Both: Kafka source startingOffsets=earliest, maxOffsetsPerTrigger=--batch, Trigger.AvailableNow, Kafka sink.
Timed: query start() to the end of awaitTermination(); the JVM's start (with the ivy resolution) separately.
CPU: the JVM's utime+stime (/proc/<pid>/stat; local mode runs the executors in it) and this Python driver's
(os.times) over the timed part. Peak RSS: the JVM's VmHWM. Spark binds to 127.0.0.1 only, with no UI.
One JSON line on stdout (with --json); Spark's own logs go to stderr.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request

PACKAGES = "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7,org.apache.spark:spark-avro_2.12:3.5.7"

parser = argparse.ArgumentParser()
parser.add_argument("--case", choices=["demo", "windowed"])
parser.add_argument("--bootstrap")
parser.add_argument("--in", dest="input")
parser.add_argument("--out")
parser.add_argument("--registry-url")
parser.add_argument("--writer-subject", help="demo: the subject whose latest schema (and id) the output is written with")
parser.add_argument("--records", type=int, default=0, help="the input's record count (reported only)")
parser.add_argument("--batch", type=int, default=100000, help="maxOffsetsPerTrigger")
parser.add_argument("--partitions", default="4", help="spark.sql.shuffle.partitions")
parser.add_argument("--checkpoint")
parser.add_argument("--driver-memory", default="2g")
parser.add_argument("--resolve-only", action="store_true")
parser.add_argument("--json", action="store_true")
args = parser.parse_args()
if not args.resolve_only:
    missing = [n for n in ("case", "bootstrap", "input", "out", "registry_url") if not getattr(args, n)]
    if args.case == "demo" and not args.writer_subject:
        missing.append("writer_subject")
    if missing:
        parser.error("missing: " + ", ".join("--" + m.replace("_", "-").replace("input", "in") for m in missing))

os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
t_jvm = time.perf_counter()
from local_spark import local_session, vm_hwm_mb  # noqa: E402
from pyspark.sql.avro.functions import from_avro, to_avro  # noqa: E402
from pyspark.sql.functions import (  # noqa: E402
    avg,
    col,
    concat,
    count,
    expr,
    hour,
    length,
    lit,
    struct,
    to_date,
    to_json,
    unhex,
    window,
)

spark = local_session(
    "sluice-bench-peer",
    args.driver_memory,
    args.partitions,
    {
        "spark.jars.packages": PACKAGES,
        "spark.jars.ivy": os.path.expanduser("~/.cache/sluice/ivy"),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.streaming.numRecentProgressUpdates": "100000",
    },
)
jvm_start_ms = round((time.perf_counter() - t_jvm) * 1000)
jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()

if args.resolve_only:
    spark.range(1).count()
    spark.stop()
    print(json.dumps({"resolved": True, "sparkVersion": spark.version, "jvmStartMs": jvm_start_ms}))
    sys.exit(0)


def latest(subject):
    url = f"{args.registry_url.rstrip('/')}/subjects/{urllib.parse.quote(subject, safe='')}/versions/latest"
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


reader_schema = latest(f"{args.input}-value")["schema"]
events = (
    spark.readStream.format("kafka")
    .option("kafka.bootstrap.servers", args.bootstrap)
    .option("subscribe", args.input)
    .option("startingOffsets", "earliest")
    .option("maxOffsetsPerTrigger", args.batch)
    .load()
    .select(
        col("key"),
        from_avro(expr("substring(value, 6, length(value) - 5)"), reader_schema, {"mode": "FAILFAST"}).alias("e"),
    )
    .select("key", "e.*")
)

writer_schema_id = None
if args.case == "demo":
    writer = latest(args.writer_subject)
    writer_schema_id = int(writer["id"])
    header_hex = "00" + format(writer_schema_id, "08x")  # magic byte 0, then the id, 4 bytes big-endian
    processed = (
        events.filter("user_id IS NOT NULL AND timestamp IS NOT NULL")
        .withColumn("event_hour", hour(col("timestamp")))
        .withColumn("event_date", to_date(col("timestamp")))
        .withColumn("is_mobile", col("device_type").isin("mobile", "tablet"))
        .withColumn(
            "event_category",
            expr(
                "CASE WHEN event_type IN ('add_to_cart', 'purchase') THEN 'commerce' "
                "WHEN event_type IN ('login', 'logout') THEN 'account' ELSE 'engagement' END"
            ),
        )
    )
    fields = [
        "user_id", "event_type", "timestamp", "session_id", "country", "device_type",
        "event_hour", "event_date", "is_mobile", "event_category",
    ]
    output = processed.select(
        col("key"), concat(unhex(lit(header_hex)), to_avro(struct(*fields), writer["schema"])).alias("value")
    )
    mode = "append"
else:
    output = (
        events.withWatermark("timestamp", "1 minute")
        .groupBy(window(col("timestamp"), "1 minute"), col("event_type"))
        .agg(count("*").alias("events"), avg(length(col("page_url"))).alias("avg_url_length"))
        .select(
            to_json(
                struct(col("window.start"), col("window.end"), col("event_type"), col("events"), col("avg_url_length"))
            ).alias("value")
        )
    )
    mode = "update"

checkpoint = args.checkpoint or tempfile.mkdtemp(prefix="spark-bench-peer-")


def jvm_cpu_seconds():
    with open(f"/proc/{jvm_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15, in clock ticks
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def driver_cpu_seconds():
    t = os.times()
    return t.user + t.system


query = (
    output.writeStream.format("kafka")
    .option("kafka.bootstrap.servers", args.bootstrap)
    .option("topic", args.out)
    .option("checkpointLocation", checkpoint)
    .outputMode(mode)
    .trigger(availableNow=True)
)
jvm0, py0 = jvm_cpu_seconds(), driver_cpu_seconds()
start_epoch_ms = time.time() * 1000
t0 = time.perf_counter()
q = query.start()
q.awaitTermination()
seconds = time.perf_counter() - t0
jvm_cpu, py_cpu = jvm_cpu_seconds() - jvm0, driver_cpu_seconds() - py0
if q.exception():
    raise RuntimeError(str(q.exception()))
progress = q.recentProgress
input_rows = sum(p["numInputRows"] for p in progress)


def first_batch_done_ms():
    # The end of the first batch that wrote rows, from its progress report (trigger start + triggerExecution).
    from datetime import datetime

    for p in progress:
        if p["numInputRows"] > 0 and p.get("sink", {}).get("numOutputRows", 0) != 0:
            ts = datetime.strptime(p["timestamp"].replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000
            return round(ts + p["durationMs"].get("triggerExecution", 0) - start_epoch_ms)
    return None


result = {
    "engine": "pyspark",
    "sparkVersion": spark.version,
    "pipeline": args.case,
    "inputRows": input_rows,
    "batches": sum(1 for p in progress if p["numInputRows"] > 0),
    "noDataBatches": sum(1 for p in progress if p["numInputRows"] == 0),
    "wallMs": round(seconds * 1000),
    "recordsPerSecond": round(input_rows / seconds) if seconds > 0 else 0,
    "startEpochMs": round(start_epoch_ms),
    "firstBatchDoneMs": first_batch_done_ms(),
    "cpuSeconds": round(jvm_cpu + py_cpu, 2),
    "jvmCpuSeconds": round(jvm_cpu, 2),
    "driverCpuSeconds": round(py_cpu, 2),
    "cpuCores": round((jvm_cpu + py_cpu) / seconds, 2) if seconds > 0 else 0,
    "peakRssMB": vm_hwm_mb(jvm_pid),
    "jvmStartMs": jvm_start_ms,
    "shufflePartitions": int(args.partitions),
    "droppedByWatermark": sum(
        o.get("numRowsDroppedByWatermark", 0) for p in progress for o in (p.get("stateOperators") or [])
    ),
    "sinkOutputRows": sum(max(0, p.get("sink", {}).get("numOutputRows", 0)) for p in progress),
    **({"writerSchemaId": writer_schema_id} if writer_schema_id is not None else {}),
}
spark.stop()
if not args.checkpoint:
    shutil.rmtree(checkpoint, ignore_errors=True)
if args.json:
    print(json.dumps(result))
else:
    print(
        f"pyspark {result['sparkVersion']} {args.case}: {input_rows} input rows in {result['batches']} batches, "
        f"{result['recordsPerSecond']} records/s, {result['cpuCores']} cores, peak RSS {result['peakRssMB']} MB "
        f"(JVM start {jvm_start_ms} ms)"
    )
sys.exit(0)
