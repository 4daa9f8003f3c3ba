// Spark Connect's own server (SparkConnectServer, Spark 3.5) listens on every interface and has no setting
// for the address (spark.connect.grpc.binding.address arrived in Spark 4.0). Sluice's local server must
// listen on 127.0.0.1 only, so this starts Spark's own gRPC service, SparkConnectService, on a loopback
// socket instead. Everything else is Spark's: the session comes from spark-submit's configuration.
//
// Built by src/stack/spark.ts with javac against pyspark's jars only; the Connect classes (from the
// spark-connect jar spark-submit resolves with --packages) are reached by reflection, so the build needs
// no Connect jar on this machine.
package sluice;

import java.lang.reflect.Method;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import org.apache.spark.sql.SparkSession;

public final class LoopbackConnectServer {
  public static void main(String[] args) throws Exception {
    SparkSession spark = SparkSession.builder().getOrCreate();
    int port = Integer.parseInt(spark.sparkContext().getConf().get("spark.connect.grpc.binding.port", "15002"));
    int maxMessage = Integer.parseInt(spark.sparkContext().getConf().get("spark.connect.grpc.maxInboundMessageSize", String.valueOf(128 * 1024 * 1024)));

    Object service = Class.forName("org.apache.spark.sql.connect.service.SparkConnectService").getConstructor(boolean.class).newInstance(false);
    Class<?> builderClass = Class.forName("org.sparkproject.connect.grpc.netty.NettyServerBuilder");
    Class<?> bindable = Class.forName("org.sparkproject.connect.grpc.BindableService");
    Object builder = builderClass.getMethod("forAddress", SocketAddress.class).invoke(null, new InetSocketAddress("127.0.0.1", port));
    builder = builderClass.getMethod("maxInboundMessageSize", int.class).invoke(builder, maxMessage);
    builder = builderClass.getMethod("addService", bindable).invoke(builder, service);
    Object server = builderClass.getMethod("build").invoke(builder);
    Method start = server.getClass().getMethod("start");
    start.setAccessible(true);
    start.invoke(server);
    Method getPort = server.getClass().getMethod("getPort");
    getPort.setAccessible(true);
    // The line the launcher waits for (src/stack/spark.ts).
    System.out.println("Spark Connect server listening on 127.0.0.1:" + getPort.invoke(server));
    System.out.flush();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try {
        Method shutdown = server.getClass().getMethod("shutdownNow");
        shutdown.setAccessible(true);
        shutdown.invoke(server);
      } catch (Exception e) {
        // stopping anyway
      }
      spark.stop();
    }));
    Method await = server.getClass().getMethod("awaitTermination");
    await.setAccessible(true);
    await.invoke(server);
  }
}
