package itb.hapi;

import ca.uhn.fhir.rest.server.RestfulServer;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;

/**
 * Starts the HAPI FHIR JPA server on http://HOST:PORT/fhir.
 * Usage: java -cp ... itb.hapi.Main [PORT] (host from -Ditb.hapi.host, default 127.0.0.1).
 */
public final class Main {
	private static final Logger ourLog = LoggerFactory.getLogger(Main.class);

	private Main() {}

	public static void main(String[] args) throws Exception {
		int port = args.length > 0 ? Integer.parseInt(args[0]) : 8080;
		String host = System.getProperty("itb.hapi.host", "127.0.0.1");
		long t0 = System.nanoTime();

		AnnotationConfigApplicationContext spring = new AnnotationConfigApplicationContext(ServerConfig.class);
		RestfulServer fhirServlet = spring.getBean(RestfulServer.class);

		Server jetty = new Server();
		ServerConnector connector = new ServerConnector(jetty);
		connector.setHost(host);
		connector.setPort(port);
		jetty.addConnector(connector);

		ServletContextHandler context = new ServletContextHandler();
		context.setContextPath("/");
		ServletHolder holder = new ServletHolder("fhir", fhirServlet);
		holder.setInitOrder(1);
		context.addServlet(holder, "/fhir/*");
		jetty.setHandler(context);
		jetty.setStopAtShutdown(false);

		Runtime.getRuntime().addShutdownHook(new Thread(() -> {
			try {
				jetty.stop();
			} catch (Exception e) {
				ourLog.warn("Error stopping Jetty", e);
			}
			spring.close();
		}, "itb-hapi-shutdown"));

		jetty.start();
		ourLog.info("ITB HAPI FHIR server ready at http://{}:{}/fhir after {} ms",
				host, connector.getLocalPort(), (System.nanoTime() - t0) / 1_000_000);
		jetty.join();
	}
}
