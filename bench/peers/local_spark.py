"""The PySpark peers' session (spark_join.py, spark_user_state.py, spark_pipelines.py): local[2], the driver bound to
127.0.0.1 only, no UI, no progress bars, logs at ERROR. `conf`: each peer's own settings on top."""
from pyspark.sql import SparkSession


def local_session(app, driver_memory, partitions, conf):
    builder = (
        SparkSession.builder.master("local[2]")
        .appName(app)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", partitions)
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def vm_hwm_mb(pid):
    """A process's peak resident memory (VmHWM) in MB, from /proc: the JVM's, for the peers' peakRssMB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return None
