// A TCP load balancer in front of server nodes, for connection-state recovery tests: cutting it ends the open
// connections at the transport (as a network drop does), so clients reconnect by themselves and may recover.
import net from 'node:net';

export interface TcpProxy {
  url: string;
  /** New connections go to `port` (none while null); the open ones are ended. */
  route(port: number | null): void;
  close(): void;
}

export async function tcpProxy(initialPort: number): Promise<TcpProxy> {
  let port: number | null = initialPort;
  const connections = new Set<net.Socket>();
  const server = net.createServer((incoming) => {
    if (port === null) {
      incoming.destroy();
      return;
    }
    const outgoing = net.connect(port, '127.0.0.1');
    for (const socket of [incoming, outgoing]) {
      connections.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        connections.delete(socket);
        incoming.destroy();
        outgoing.destroy();
      });
    }
    incoming.pipe(outgoing).pipe(incoming);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy not listening');
  return {
    url: `http://127.0.0.1:${address.port}`,
    route(next) {
      port = next;
      for (const socket of connections) socket.destroy();
    },
    close() {
      port = null;
      for (const socket of connections) socket.destroy();
      server.close();
    },
  };
}
