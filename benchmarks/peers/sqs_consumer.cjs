// sqs-consumer (Node.js, bbc/sqs-consumer): its `Consumer` with `handleMessageBatch`.
//
// The same protocol as the Python drivers (benchmarks/_probe.py): the same options, a window
// that opens when the consumer is polling and closes when the last message is handled, and one
// "BENCH-RESULT {json}" line on stdout. A Consumer has one batch in flight at a time, so
// `--concurrency` N runs ceil(N / 10) consumers of batches of ten side by side. Node's modules
// come from the peer's own directory (NODE_PATH), outside the project.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const { Consumer } = require("sqs-consumer");
const { SQSClient, GetQueueUrlCommand } = require("@aws-sdk/client-sqs");

const RESULT_MARKER = "BENCH-RESULT ";
const IO_MS = 50; // benchmarks/handlers.py: IO_SECONDS
const CPU_ROUNDS = 100; // benchmarks/handlers.py: CPU_ROUNDS
const CHUNK = Buffer.alloc(1024, "x");

function parseOptions(argv) {
  const options = {
    queue: "bench",
    handler: "noop",
    concurrency: 100,
    deadline: 120,
    startUrl: null,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (name === "--endpoint") options.endpoint = value;
    else if (name === "--queue") options.queue = value;
    else if (name === "--messages") options.messages = Number(value);
    else if (name === "--handler") options.handler = value;
    else if (name === "--concurrency") options.concurrency = Number(value);
    else if (name === "--start-url") options.startUrl = value;
    else if (name === "--deadline") options.deadline = Number(value);
    // --loop and --contender concern the Python contenders only.
  }
  if (!options.endpoint || !options.messages) {
    throw new Error("usage: node sqs_consumer.cjs --endpoint URL --messages N [options]");
  }
  return options;
}

// The same work as benchmarks/handlers.py.
const HANDLERS = {
  noop: async () => {},
  io: () => new Promise((resolve) => setTimeout(resolve, IO_MS)),
  cpu: async (body) => {
    let digest = Buffer.from(body ?? "").subarray(0, 32);
    for (let i = 0; i < CPU_ROUNDS; i++) {
      digest = crypto.createHash("sha256").update(digest).update(CHUNK).digest();
    }
  },
};

function statusKib(field) {
  try {
    const line = fs
      .readFileSync("/proc/self/status", "ascii")
      .split("\n")
      .find((l) => l.startsWith(field));
    return line ? Number(line.split(/\s+/)[1]) : 0;
  } catch {
    return 0;
  }
}

class Window {
  start() {
    this.rssReadyKib = statusKib("VmRSS:");
    this.cpu0 = process.cpuUsage();
    this.t0 = performance.now();
    this.startedAt = Date.now() / 1000;
  }

  stop() {
    if (this.t1 !== undefined || this.t0 === undefined) return;
    this.t1 = performance.now();
    this.cpu = process.cpuUsage(this.cpu0);
    this.rssStopKib = statusKib("VmRSS:");
  }

  figures() {
    if (this.t0 === undefined) return { seconds: 0, cpu_user: 0, cpu_sys: 0 };
    this.stop();
    return {
      seconds: (this.t1 - this.t0) / 1000,
      cpu_user: this.cpu.user / 1e6,
      cpu_sys: this.cpu.system / 1e6,
      rss_ready_kib: this.rssReadyKib,
      rss_stop_kib: this.rssStopKib,
      started_at: this.startedAt,
    };
  }
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const handler = HANDLERS[options.handler];
  const window = new Window();
  let handled = 0;
  let running = 0;
  let peakRunning = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));

  const handle = async (message) => {
    running += 1;
    peakRunning = Math.max(peakRunning, running);
    await handler(message.Body);
    running -= 1;
    handled += 1;
    if (handled === options.messages) {
      window.stop();
      finish();
    }
  };

  const sqs = new SQSClient({ endpoint: options.endpoint, region: "us-east-1" });
  const { QueueUrl: queueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: options.queue }));
  const consumers = [];
  for (let i = 0; i < Math.ceil(options.concurrency / 10); i++) {
    const consumer = Consumer.create({
      queueUrl,
      sqs,
      batchSize: 10,
      waitTimeSeconds: 20,
      handleMessageBatch: async (messages) => {
        await Promise.all(messages.map(handle));
        return messages; // acknowledged: deleted with DeleteMessageBatch
      },
    });
    consumer.on("error", (err) => console.error(`sqs-consumer error: ${err.message}`));
    consumers.push(consumer);
    consumer.start();
  }

  window.start();
  if (options.startUrl) {
    const response = await fetch(`${options.startUrl}?messages=${options.messages}`, {
      method: "POST",
    });
    await response.text();
  }
  const deadline = new Promise((resolve) => setTimeout(resolve, options.deadline * 1000).unref());
  await Promise.race([finished, deadline]);
  window.stop();
  // Let the last DeleteMessageBatch go out before the consumers stop.
  for (const consumer of consumers) consumer.stop({ abort: false });
  await new Promise((resolve) => setTimeout(resolve, 200));

  // The package's "exports" hide its package.json: find it beside the resolved entry point.
  const entry = require.resolve("sqs-consumer");
  const root = entry.slice(0, entry.lastIndexOf("sqs-consumer") + "sqs-consumer".length);
  const version = JSON.parse(fs.readFileSync(`${root}/package.json`, "utf8")).version;
  const result = {
    contender: "sqs-consumer-node",
    handled,
    target: options.messages,
    timed_out: handled < options.messages,
    peak_running: peakRunning,
    peak_rss_kib: statusKib("VmHWM:"),
    ...window.figures(),
    version,
  };
  process.stdout.write(RESULT_MARKER + JSON.stringify(result) + "\n");
  process.exit(0);
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
