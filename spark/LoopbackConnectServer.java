// Spark Connect's own server (SparkConnectServer, Spark 3.5) listens on every interface and has no setting
// for the address (spark.connect.grpc.binding.address arrived in Spark 4.0). Sluice's local server must
// listen on 127.0.0.1 only, so this starts Spark's own gRPC service, SparkConnectService, on a loopback
// socket instead. Everything else is Spark's: the session comes from spark-submit's configuration.
package sluice;

import java.net.InetSocketAddress;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.connect.service.SparkConnectService;
import org.sparkproject.connect.grpc.Server;
import org.sparkproject.connect.grpc.netty.NettyServerBuilder;

public final class LoopbackConnectServer {
  public static void main(String[] args) throws Exception {
    SparkSession spark = SparkSession.builder().getOrCreate();
    int port = Integer.parseInt(spark.sparkContext().getConf().get("spark.connect.grpc.binding.port", "15002"));
    int maxMessage = Integer.parseInt(spark.sparkContext().getConf().get("spark.connect.grpc.maxInboundMessageSize", String.valueOf(128 * 1024 * 1024)));
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port))
        .maxInboundMessageSize(maxMessage)
        .addService(new SparkConnectService(false))
        .build()
        .start();
    // The line the launcher waits for (src/stack/spark.ts).
    System.out.println("Spark Connect server listening on 127.0.0.1:" + server.getPort());
    System.out.flush();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.shutdownNow();
      spark.stop();
    }));
    server.awaitTermination();
  }
}
