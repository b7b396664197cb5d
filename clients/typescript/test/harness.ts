/** Starts a real `segd serve` on 127.0.0.1 (binary from $SEGD_BIN, else the repository's
 * target/release/segd) with a key per scope and a temporary data dir, and a scripted stub
 * server for failure cases a healthy segd does not produce on demand. */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
export const ADMIN = "ak_test";
export const READ = "rk_test";
export const WRITE = "wk_test";

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, "127.0.0.1", done));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((done) => probe.close(done));
  return port;
}

export class SegdServer {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly dataDir: string,
  ) {}

  static async start(): Promise<SegdServer> {
    const binary = process.env.SEGD_BIN ?? join(ROOT, "target", "release", "segd");
    if (!existsSync(binary)) throw new Error(`segd binary not found at ${binary}: cargo build --release, or set SEGD_BIN`);
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), "segd-ts-"));
    const child = spawn(
      binary,
      ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, "--admin-key", ADMIN, "--read-key", READ, "--write-key", WRITE, "--shards", "2", "--webhook-allow-private"],
      { stdio: "ignore" },
    );
    const server = new SegdServer(`http://127.0.0.1:${port}`, child, dataDir);
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const response = await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        if (response.status === 200) return server;
      } catch {
        // not listening yet
      }
      if (child.exitCode !== null || Date.now() > deadline) {
        await server.stop();
        throw new Error("segd did not become ready");
      }
      await new Promise((done) => setTimeout(done, 100));
    }
  }

  async call<T = any>(method: string, path: string, body?: unknown, key = ADMIN): Promise<T> {
    const response = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  identify(userId: string, traits: Record<string, unknown>): Promise<unknown> {
    return this.call("POST", "/v1/identify", { userId, traits }, WRITE);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((done) => this.child.once("exit", done));
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export type Scripted = { status: number; headers?: Record<string, string>; body: string | ((seen: Seen) => string) };

/** Answers each request with the next scripted answer and closes the connection. */
export class Stub {
  readonly seen: Seen[] = [];
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(script: Scripted[]): Promise<Stub> {
    const queue = [...script];
    let stub: Stub | undefined;
    const server = createServer((request: IncomingMessage, response: ServerResponse) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        const seen = { method: request.method ?? "", path: request.url ?? "", headers: request.headers, body: Buffer.concat(chunks).toString() };
        stub!.seen.push(seen);
        const next = queue.shift() ?? { status: 500, body: "{}" };
        const body = typeof next.body === "function" ? next.body(seen) : next.body;
        response.writeHead(next.status, { ...next.headers, "content-length": Buffer.byteLength(body), connection: "close" });
        response.end(body);
      });
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    stub = new Stub(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return stub;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((done) => this.server.close(done));
  }
}
