// Khronos' glTF validator on each file named: prints its report (JSON) per file, one per line.
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

for (const path of process.argv.slice(2)) {
  const report = await validator.validateBytes(new Uint8Array(await readFile(path)), { maxIssues: 100 });
  console.log(JSON.stringify({ path, ...report }));
}
