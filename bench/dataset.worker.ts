// Worker thread of the dataset build: hashes and chains rows while the main thread inserts.
import { parentPort, workerData } from 'node:worker_threads';
import { type GeneratorConfig, generateChunk } from './dataset.rows.ts';

const config = workerData as GeneratorConfig;
parentPort?.on('message', (task: { start: number; count: number }) => {
  parentPort?.postMessage(generateChunk(config, task.start, task.count));
});
