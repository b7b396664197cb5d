/** Where a consumer keeps the sequence of the last change it processed. */
import { open, readFile, rename, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";

export interface Checkpoint {
  load(): Promise<number | undefined>;
  save(sequence: number): Promise<void>;
}

/** A position held in memory. */
export class MemoryCheckpoint implements Checkpoint {
  constructor(public sequence?: number) {}
  async load(): Promise<number | undefined> {
    return this.sequence;
  }
  async save(sequence: number): Promise<void> {
    this.sequence = sequence;
  }
}

/** A position in a small file, replaced atomically (write, fsync, rename): a crash leaves
 * the old or the new position, never a torn one. */
export class FileCheckpoint implements Checkpoint {
  constructor(readonly path: string) {}

  async load(): Promise<number | undefined> {
    let text: string;
    try {
      text = (await readFile(this.path, "ascii")).trim();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    if (text === "") return undefined;
    const value = Number(text);
    if (!Number.isSafeInteger(value)) throw new Error(`checkpoint ${this.path} holds ${text}`);
    return value;
  }

  async save(sequence: number): Promise<void> {
    const temporary = join(dirname(this.path), `.checkpoint-${process.pid}-${Date.now()}`);
    const handle = await open(temporary, "w", 0o600);
    try {
      await handle.writeFile(`${sequence}\n`, "ascii");
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temporary, this.path);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
  }
}
