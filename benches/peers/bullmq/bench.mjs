// The BullMQ side of the `side-by-side` bench scenario (benches/peers.rs):
// the same workload as lanes' `jobs` scenario, on one Redis.
//
//   node bench.mjs <redis port> <concurrency> <jobs> <producers>
//
// `producers` async loops call `queue.add` while one Worker (running
// `concurrency` jobs at once) runs them; prints `jobs_per_second <f64>`,
// the job count over the time from the first add to the last `completed`
// event. Each job is added with `removeOnComplete: true` (the queue's
// default job options), so that it is deleted as it completes and Redis
// does not fill up; the queue is obliterated before and after the run.

import { Queue, Worker } from "bullmq";

// A run that takes longer than this is reported as failed (the Rust side
// kills the process at 120 s in any case).
const RUN_LIMIT_MS = 110_000;

function usage() {
  console.error("usage: node bench.mjs <redis port> <concurrency> <jobs> <producers>");
  process.exit(2);
}

const [port, concurrency, jobs, producers] = process.argv.slice(2).map(Number);
if (![port, concurrency, jobs, producers].every((n) => Number.isInteger(n) && n > 0)) {
  usage();
}

const connection = { host: "127.0.0.1", port };
// A queue of its own for each run, so that nothing left by another run is
// counted.
const name = `lanes-bench-${process.pid}-${Date.now()}`;
const queue = new Queue(name, {
  connection,
  defaultJobOptions: { removeOnComplete: true },
});

let completed = 0;
let finishedAt = 0;
let allCompleted;
const done = new Promise((resolve) => (allCompleted = resolve));

const worker = new Worker(name, async () => {}, {
  connection,
  concurrency,
});
worker.on("completed", () => {
  completed += 1;
  if (completed === jobs) {
    finishedAt = performance.now();
    allCompleted();
  }
});
worker.on("failed", (job, error) => {
  console.error(`job ${job?.id} failed: ${error}`);
  process.exit(1);
});
worker.on("error", (error) => {
  console.error(`worker error: ${error}`);
  process.exit(1);
});

const limit = setTimeout(() => {
  console.error(`gave up after ${RUN_LIMIT_MS} ms: ${completed} of ${jobs} jobs completed`);
  process.exit(1);
}, RUN_LIMIT_MS);

await queue.waitUntilReady();
await worker.waitUntilReady();
await queue.obliterate({ force: true });

// Each producer adds every `producers`-th job, as lanes' enqueue_count does.
async function produce(first) {
  for (let i = first; i < jobs; i += producers) {
    await queue.add("trivial", null);
  }
}

const startedAt = performance.now();
await Promise.all(Array.from({ length: producers }, (_, first) => produce(first)));
await done;
const seconds = (finishedAt - startedAt) / 1000;
clearTimeout(limit);

await worker.close();
await queue.obliterate({ force: true });
await queue.close();
console.log(`jobs_per_second ${jobs / seconds}`);
