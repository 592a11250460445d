// An SMTP sink for the mail bench, run in its own process so that its CPU time does not sit in
// the measuring process: smtp-server on 127.0.0.1, no TLS, no auth; it reads each message to
// the end, discards it and counts it. Reports its port to the parent over IPC, answers
// { count } and { cpu } queries, and stops on SIGTERM.
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

let count = 0;
let bytes = 0;
const server = new SMTPServer({
  secure: false,
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  disableReverseLookup: true,
  logger: false,
  closeTimeout: 1_000,
  size: 10 * 1024 * 1024,
  onData(stream, _session, callback) {
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    stream.on('error', callback);
    stream.on('end', () => {
      count += 1;
      callback();
    });
  },
});

await new Promise<void>((resolve, reject) => {
  server.server.once('error', reject);
  server.listen(0, '127.0.0.1', () => resolve());
});

process.on('message', (message: { count?: true; cpu?: true }) => {
  if (message.count) process.send?.({ count, bytes });
  if (message.cpu) process.send?.({ cpu: process.cpuUsage() });
});
process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1_500).unref();
});
process.send?.({ port: (server.server.address() as AddressInfo).port });
