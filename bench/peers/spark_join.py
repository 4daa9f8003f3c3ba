"""PySpark 3.5 peer of bench/join.ts: the same stream-stream inner join on the same data, in local[2].

    pip install pyspark==3.5.9          (Java 17; no Maven jars needed)
    node dist/bench/join.js --write-data DIR --records 1000000 --batch 100000
    python3 bench/peers/spark_join.py --data DIR [--partitions 4] [--provider hdfs|rocksdb] [--json] [--verify]
    python3 bench/peers/spark_join.py --data DIR --scan-only    the same sources and batches, no join

DIR/orders and DIR/payments hold one JSON Lines file per batch (increasing modification times); each is read by
a file source with maxFilesPerTrigger=1, so every micro-batch gets one file of each side, as each Sluice trigger
gets one batch of each memory stream. Trigger.AvailableNow; the sink is `noop` (it takes every column, so the
optimizer cannot prune the state's columns) and output rows come from the progress reports (`--verify`:
foreachBatch summing crc32(order_id || '|' || payment_id), the figure bench/join.ts --verify computes).

Timed: from query start to its end (planning, reading and parsing the JSON files, the join, state commits).
The JVM's start is timed separately. Peak RSS is the JVM's (VmHWM; local mode runs the executor in it).
Spark binds to 127.0.0.1 only, with no UI.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--partitions", default="4")
parser.add_argument("--provider", default="hdfs", choices=["hdfs", "rocksdb"])
parser.add_argument("--driver-memory", default="2g")
parser.add_argument("--json", action="store_true")
parser.add_argument("--verify", action="store_true")
parser.add_argument(
    "--scan-only",
    action="store_true",
    help="the same file sources and batches with no join: what reading and parsing the JSON files costs",
)
args = parser.parse_args()

ORDERS_SCHEMA = "order_id STRING, order_time TIMESTAMP, amount INT"
PAYMENTS_SCHEMA = "payment_id STRING, pay_order STRING, pay_time TIMESTAMP"
JOIN_CONDITION = "pay_order = order_id AND pay_time >= order_time AND pay_time <= order_time + interval 10 minutes"
PROVIDERS = {
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
}

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
t_jvm = time.perf_counter()
from local_spark import local_session, vm_hwm_mb  # noqa: E402
from pyspark.sql.functions import expr  # noqa: E402

spark = local_session(
    "sluice-bench-join",
    args.driver_memory,
    args.partitions,
    {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.streaming.stateStore.providerClass": PROVIDERS[args.provider],
        "spark.sql.streaming.numRecentProgressUpdates": "10000",
    },
)
jvm_start_s = time.perf_counter() - t_jvm

checkpoint = tempfile.mkdtemp(prefix="spark-bench-join-")
orders = (
    spark.readStream.schema(ORDERS_SCHEMA).option("maxFilesPerTrigger", 1).json(os.path.join(args.data, "orders"))
)
payments = (
    spark.readStream.schema(PAYMENTS_SCHEMA).option("maxFilesPerTrigger", 1).json(os.path.join(args.data, "payments"))
)
if args.scan_only:
    # Every column of both sides reaches the noop sink, so none is pruned from the JSON parsing.
    joined = orders.selectExpr("order_id AS id", "order_time AS time", "CAST(amount AS STRING) AS other").unionByName(
        payments.selectExpr("payment_id AS id", "pay_time AS time", "pay_order AS other")
    )
else:
    joined = orders.withWatermark("order_time", "10 minutes").join(
        payments.withWatermark("pay_time", "10 minutes"), expr(JOIN_CONDITION)
    )

verified = {"rows": 0, "crc": 0}


def verify_batch(df, batch_id):
    r = df.selectExpr("count(*) AS n", "sum(crc32(concat(order_id, '|', payment_id))) AS crc").collect()[0]
    verified["rows"] += r["n"]
    verified["crc"] += r["crc"] or 0


writer = joined.writeStream.outputMode("append").option("checkpointLocation", checkpoint).trigger(availableNow=True)
writer = writer.foreachBatch(verify_batch) if args.verify else writer.format("noop")
t0 = time.perf_counter()
q = writer.start()
q.awaitTermination()
seconds = time.perf_counter() - t0
progress = q.recentProgress
if q.exception():
    raise RuntimeError(str(q.exception()))


jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
ops = [p["stateOperators"][0] for p in progress if p["stateOperators"]]
input_rows = sum(p["numInputRows"] for p in progress)
output_rows = verified["rows"] if args.verify else sum(p["sink"].get("numOutputRows", 0) for p in progress)
result = {
    "engine": "pyspark",
    "scanOnly": args.scan_only,
    "sparkVersion": spark.version,
    "provider": args.provider,
    "partitions": int(args.partitions),
    "inputRows": input_rows,
    "batches": sum(1 for p in progress if p["numInputRows"] > 0),
    "noDataBatches": sum(1 for p in progress if p["numInputRows"] == 0),
    "seconds": round(seconds, 3),
    "recordsPerSecond": round(input_rows / seconds),
    "outputRows": output_rows,
    **({"crcSum": verified["crc"]} if args.verify else {}),
    "droppedByWatermark": sum(o.get("numRowsDroppedByWatermark", 0) for o in ops),
    "peakStateRows": max([o["numRowsTotal"] for o in ops] or [0]),
    "peakRssMB": vm_hwm_mb(jvm_pid),
    "jvmStartSeconds": round(jvm_start_s, 3),
    "driverMemory": args.driver_memory,
}
spark.stop()
shutil.rmtree(checkpoint, ignore_errors=True)
if args.json:
    print(json.dumps(result))
else:
    print(
        f"pyspark {result['sparkVersion']} {'scan only, no join' if args.scan_only else args.provider + ' state'}: {input_rows} input rows in {result['batches']} batches "
        f"(+{result['noDataBatches']} no-data), {result['recordsPerSecond']} records/s, {output_rows} output rows, "
        f"{result['droppedByWatermark']} late rows dropped, peak state {result['peakStateRows']} rows, "
        f"peak RSS {result['peakRssMB']} MB (JVM start {result['jvmStartSeconds']} s)"
        + (f", crc sum {verified['crc']}" if args.verify else "")
    )
sys.exit(0)
