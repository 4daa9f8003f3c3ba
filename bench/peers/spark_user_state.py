"""PySpark 3.5 peer of bench/userState.ts: a running count and sum per user with applyInPandasWithState, in local[2].

    pip install pyspark==3.5.9 "pandas<3" pyarrow      (Java 17; no Maven jars needed. pandas 3 is newer than
                                                        PySpark 3.5 and ran this peer 15-20% slower.)
    python3 bench/peers/spark_user_state.py --write-data DIR --keys 1000000 --records 3000000 --batch 500000
    python3 bench/peers/spark_user_state.py --data DIR [--partitions 4] [--provider rocksdb|hdfs] [--json]

The data: record i (0 <= i < N) is {user: 'u' + (i*7919 mod K), amount: i*37 mod 1000}, the rows bench/userState.ts
generates, written once (untimed) as one Parquet file per batch of B rows, with increasing modification times. A
file source with maxFilesPerTrigger=1 reads them, so every micro-batch gets the rows of one Sluice batch.

The query: groupBy('user').applyInPandasWithState(f, 'user STRING, count LONG, sum LONG', 'count LONG, sum LONG',
'update', GroupStateTimeout.NoTimeout), where f adds the key's rows to its state (count, sum) and returns one row
(user, count, sum). Trigger.AvailableNow; the sink is a foreachBatch that runs one aggregate over the batch's
output (rows, sum(count), sum(sum), sum(crc32(user|count|sum))): the figures bench/userState.ts computes.

Timed: from query start to its end (reading the Parquet files, the Python workers, state commits); the JVM's start
is timed separately. Peak RSS: the JVM's VmHWM (local mode runs the executor in it), and the largest sum, sampled
every 0.5 s, of the RSS of the JVM and its Python workers. State on disk: the checkpoint's state/ folder plus
RocksDB's working copies under spark.local.dir, at the end. Spark binds to 127.0.0.1 only, with no UI.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--write-data")
parser.add_argument("--keys", type=int, default=1_000_000)
parser.add_argument("--records", type=int)
parser.add_argument("--batch", type=int, default=500_000)
parser.add_argument("--partitions", default="4")
parser.add_argument("--provider", default="rocksdb", choices=["hdfs", "rocksdb"])
parser.add_argument("--driver-memory", default="2g")
parser.add_argument("--json", action="store_true")
args = parser.parse_args()

PROVIDERS = {
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
}


def write_data(folder, keys, records, batch):
    """One Parquet file per batch: the rows userOf/amountOf in bench/userState.ts give."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if keys % 7919 == 0:
        raise SystemExit("--keys must not be a multiple of 7919")
    files = 0
    for b, lo in enumerate(range(0, records, batch)):
        i = np.arange(lo, min(records, lo + batch), dtype=np.int64)
        users = np.char.add("u", ((i * 7919) % keys).astype(str))
        table = pa.table({"user": pa.array(users, pa.string()), "amount": pa.array((i * 37) % 1000, pa.int32())})
        path = os.path.join(folder, f"part-{b:05d}.parquet")
        pq.write_table(table, path)
        mtime = 1_700_000_000 + b * 10
        os.utime(path, (mtime, mtime))
        files += 1
    print(json.dumps({"dir": folder, "keys": keys, "records": records, "batch": batch, "files": files}))


if args.write_data:
    write_data(args.write_data, args.keys, args.records or args.keys * 3, args.batch)
    sys.exit(0)
if not args.data:
    parser.error("--data DIR (or --write-data DIR) is required")

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
local_dir = tempfile.mkdtemp(prefix="spark-bench-us-local-")
t_jvm = time.perf_counter()
import pandas as pd  # noqa: E402
from local_spark import local_session  # noqa: E402
from pyspark.sql.streaming.state import GroupStateTimeout  # noqa: E402

spark = local_session(
    "sluice-bench-user-state",
    args.driver_memory,
    args.partitions,
    {
        "spark.local.dir": local_dir,
        "spark.sql.streaming.stateStore.providerClass": PROVIDERS[args.provider],
        "spark.sql.streaming.numRecentProgressUpdates": "10000",
    },
)
jvm_start_s = time.perf_counter() - t_jvm
jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid):
    """The JVM and every process under it (pyspark.daemon and its forked workers)."""
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo.extend(children.get(q, []))
    return out


peak = {"total_kb": 0}
sampling = threading.Event()


def sampler():
    while not sampling.wait(0.5):
        peak["total_kb"] = max(peak["total_kb"], sum(status_kb(p, "VmRSS") for p in descendants(jvm_pid)))


def running_count(key, pdfs, state):
    count, total = state.get if state.exists else (0, 0)
    for pdf in pdfs:
        count += len(pdf)
        total += int(pdf["amount"].sum())
    state.update((count, total))
    yield pd.DataFrame({"user": [key[0]], "count": [count], "sum": [total]})


checkpoint = tempfile.mkdtemp(prefix="spark-bench-us-")
totals = {"rows": 0, "count": 0, "sum": 0, "crc": 0}


def check_batch(df, batch_id):
    r = df.selectExpr(
        "count(*) AS n",
        "sum(count) AS c",
        "sum(sum) AS s",
        "sum(crc32(concat_ws('|', user, CAST(count AS STRING), CAST(sum AS STRING)))) AS crc",
    ).collect()[0]
    totals["rows"] += r["n"]
    totals["count"] += r["c"] or 0
    totals["sum"] += r["s"] or 0
    totals["crc"] += r["crc"] or 0


users = spark.readStream.schema("user STRING, amount INT").option("maxFilesPerTrigger", 1).parquet(args.data)
out = users.groupBy("user").applyInPandasWithState(
    running_count,
    outputStructType="user STRING, count LONG, sum LONG",
    stateStructType="count LONG, sum LONG",
    outputMode="update",
    timeoutConf=GroupStateTimeout.NoTimeout,
)
threading.Thread(target=sampler, daemon=True).start()
t0 = time.perf_counter()
q = (
    out.writeStream.outputMode("update")
    .foreachBatch(check_batch)
    .option("checkpointLocation", checkpoint)
    .trigger(availableNow=True)
    .start()
)
q.awaitTermination()
seconds = time.perf_counter() - t0
sampling.set()
if q.exception():
    raise RuntimeError(str(q.exception()))
progress = q.recentProgress


def disk_bytes(folder):
    n = 0
    for root, _, files in os.walk(folder):
        for f in files:
            try:
                n += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return n


ops = [p["stateOperators"][0] for p in progress if p["stateOperators"]]
input_rows = sum(p["numInputRows"] for p in progress)
state_disk = disk_bytes(os.path.join(checkpoint, "state"))
local_disk = disk_bytes(local_dir)  # RocksDB's working copies (and shuffle files) while the session is up
result = {
    "engine": "pyspark",
    "sparkVersion": spark.version,
    "pandasVersion": pd.__version__,
    "provider": args.provider,
    "partitions": int(args.partitions),
    "batches": sum(1 for p in progress if p["numInputRows"] > 0),
    "inputRows": input_rows,
    "seconds": round(seconds, 1),
    "recordsPerSecond": round(input_rows / seconds),
    "stateRows": ops[-1]["numRowsTotal"] if ops else 0,
    "outputRows": totals["rows"],
    "countSum": totals["count"],
    "sumSum": totals["sum"],
    "crcSum": str(totals["crc"]),
    "peakRssMB": round(status_kb(jvm_pid, "VmHWM") / 1024),
    "peakRssWithWorkersMB": round(peak["total_kb"] / 1024),
    "stateDiskMB": round((state_disk + local_disk) / 1048576),
    "checkpointStateDiskMB": round(state_disk / 1048576),
    "localDirDiskMB": round(local_disk / 1048576),
    "jvmStartSeconds": round(jvm_start_s, 1),
    "driverMemory": args.driver_memory,
}
spark.stop()
shutil.rmtree(checkpoint, ignore_errors=True)
shutil.rmtree(local_dir, ignore_errors=True)
if args.json:
    print(json.dumps(result))
else:
    print(
        f"pyspark {result['sparkVersion']} {args.provider} state: {input_rows} input rows in {result['batches']} batches, "
        f"{result['recordsPerSecond']} records/s, {result['outputRows']} output rows, {result['stateRows']} keys in state, "
        f"peak RSS {result['peakRssMB']} MB (JVM; {result['peakRssWithWorkersMB']} MB with Python workers), "
        f"state on disk {result['stateDiskMB']} MB, crc sum {result['crcSum']} (JVM start {result['jvmStartSeconds']} s)"
    )
sys.exit(0)
