import net from 'node:net';
import type { SocketFactory } from '../../shared/bus/kafka/client.ts';

const PRODUCE = 0; // Kafka API key of Produce requests

/**
 * A network between a Kafka client and a real broker that can lose one Produce answer: the
 * broker gets the request and appends it, its answer never reaches the client, the connection
 * drops, and every new connection is cut until `heal()`. That is what a client sees when the
 * broker dies right after writing its log, or when the network fails at that moment.
 *
 * Give `socketFactory` to the client (createKafkaBus's option): each of its connections then goes
 * through a local relay that reads the Kafka framing (size, then api key and correlation id of a
 * request; the correlation id first in an answer).
 */
export function faultyNetwork() {
  let loseNextProduce = false;
  let lost: number | undefined;
  let cut = false;
  let lostAnswers = 0;
  const sockets = new Set<net.Socket>();
  const relays = new Map<string, Promise<number>>();

  /** Calls `each` with every whole frame in `chunk` (after what `pending` held); returns what is left over. */
  const frames = (pending: Buffer, chunk: Buffer, each: (frame: Buffer) => void): Buffer => {
    let buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
      const size = buf.readInt32BE(0);
      each(buf.subarray(0, 4 + size));
      buf = buf.subarray(4 + size);
    }
    return buf;
  };

  const relayTo = (host: string, port: number): Promise<number> => {
    const key = `${host}:${port}`;
    let relay = relays.get(key);
    if (!relay) {
      relay = new Promise<number>((resolve, reject) => {
        const server = net.createServer((client) => {
          if (cut) return void client.destroy();
          const broker = net.connect({ host, port });
          sockets.add(client).add(broker);
          const drop = () => (client.destroy(), broker.destroy(), sockets.delete(client), sockets.delete(broker));
          client.on('error', drop).on('close', drop);
          broker.on('error', drop).on('close', drop);
          let up: Buffer = Buffer.alloc(0);
          let down: Buffer = Buffer.alloc(0);
          client.on('data', (chunk: Buffer) => {
            up = frames(up, chunk, (f) => {
              if (loseNextProduce && f.readInt16BE(4) === PRODUCE) {
                loseNextProduce = false;
                lost = f.readInt32BE(8);
              }
              broker.write(f);
            });
          });
          broker.on('data', (chunk: Buffer) => {
            down = frames(down, chunk, (f) => {
              if (lost !== undefined && f.readInt32BE(4) === lost) {
                // The broker answered, so it appended: the client never learns it.
                lost = undefined;
                lostAnswers++;
                cut = true;
                for (const s of sockets) s.destroy();
                sockets.clear();
                return;
              }
              if (!client.destroyed) client.write(f);
            });
          });
        });
        server.unref();
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
        closers.push(() => new Promise<void>((r) => server.close(() => r())));
      });
      relays.set(key, relay);
    }
    return relay;
  };
  const closers: (() => Promise<void>)[] = [];

  const socketFactory: SocketFactory = ({ host, port, onConnect }) => {
    // kafkajs wants the socket now; it connects once the relay listens.
    const socket = new net.Socket();
    void relayTo(host, port).then(
      (relayPort) => socket.connect({ host: '127.0.0.1', port: relayPort }, onConnect),
      (e: Error) => socket.destroy(e),
    );
    return socket;
  };

  return {
    socketFactory,
    /** The next Produce request reaches the broker; its answer is lost and the network goes down. */
    loseNextProduceAnswer() {
      loseNextProduce = true;
    },
    /** Produce answers lost so far. */
    get lostAnswers() {
      return lostAnswers;
    },
    get down() {
      return cut;
    },
    heal() {
      cut = false;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(closers.map((c) => c()));
    },
  };
}
