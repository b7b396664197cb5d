// Writes segd's OpenAPI document (`segd openapi`, the same document `GET /openapi.json`
// serves) to openapi/generated/openapi.json, for openapi-typescript to generate from.
// The binary is $SEGD_BIN (cargo test sets it), else the repository's target/release/segd.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..", "..");
const binary = process.env.SEGD_BIN ?? join(root, "target", "release", "segd");
if (!existsSync(binary)) {
  console.error(`segd binary not found at ${binary}: cargo build --release, or set SEGD_BIN`);
  process.exit(1);
}
const document = execFileSync(binary, ["openapi"], { encoding: "utf8" });
JSON.parse(document); // fail here, not in the generator, when it is not JSON
mkdirSync(join(here, "generated"), { recursive: true });
writeFileSync(join(here, "generated", "openapi.json"), document);
